"""The query path's decisions with in-process backends: routing, cascade, billing, streaming."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from orchestrator.config import validate_config_dict
from orchestrator.errors import InvalidRequest, NotFound
from orchestrator.llm import GenerationRequest, GenerationResult, StreamDelta
from orchestrator.protocol import ChatCompletionRequest
from orchestrator.service import Backends, QueryService, QueryTrace

CONFIG = {
    "tenants": [{"name": "t", "api_keys": ["k"]}],
    "router": {
        "artifact": "/r",
        "min_probability": 0.5,
        "adapters": {"legal": "legal", "general": None},
    },
    "small": {
        "engine": {"model": "/m/small", "served_name": "small", "adapters": {"legal": "/a/legal"}},
        "price": {"input_per_million": "1", "output_per_million": "2"},
    },
    "large": {
        "engine": {"model": "/m/large", "served_name": "large"},
        "price": {"input_per_million": "10", "output_per_million": "20"},
    },
    "cascade": {
        "default": {"signal": "mean_prob", "threshold": 0.5},
        "routes": {"legal": {"signal": "mean_prob", "threshold": 0.9}},
    },
    "limits": {"max_tokens_limit": 100, "default_max_tokens": 10},
}


class FakeModels:
    """Small answers with a fixed per-token probability; large always answers 'big'."""

    def __init__(self, small_prob: float, route: dict[str, Any]):
        self.small_prob = small_prob
        self.route_result = route
        self.calls: list[tuple[str, GenerationRequest]] = []

    async def route(self, text: str) -> dict[str, Any]:
        return self.route_result

    def _result(self, which: str, request: GenerationRequest) -> GenerationResult:
        self.calls.append((which, request))
        prob = self.small_prob if which == "small" else 0.99
        model = request.adapter or which
        return GenerationResult(
            text=f"{which} says",
            token_ids=[1, 2, 3],
            token_logprobs=[math.log(prob)] * 3,
            prompt_tokens=100,
            completion_tokens=3,
            finish_reason="stop",
            model=model,
        )

    async def small_generate(self, request: GenerationRequest) -> GenerationResult:
        return self._result("small", request)

    async def large_generate(self, request: GenerationRequest) -> GenerationResult:
        return self._result("large", request)

    async def _stream(self, which: str, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        result = self._result(which, request)
        for i, word in enumerate(["a", "b", "c"]):
            last = i == 2
            yield StreamDelta(
                text=word,
                token_logprobs=[result.token_logprobs[i]],
                finish_reason="stop" if last else None,
                prompt_tokens=100,
                completion_tokens=i + 1,
            )

    def backends(self) -> Backends:
        return Backends(
            self.route,
            self.small_generate,
            lambda r: self._stream("small", r),
            self.large_generate,
            lambda r: self._stream("large", r),
        )


def _service(models: FakeModels) -> QueryService:
    return QueryService(validate_config_dict(CONFIG), models.backends())


def _request(model: str = "auto", **kw: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest(model=model, messages=[{"role": "user", "content": "q"}], **kw)


def _trace() -> QueryTrace:
    return QueryTrace("q-1", "t", model_requested="auto", stream=False)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_confident_legal_route_uses_adapter_and_bills_small_only() -> None:
    models = FakeModels(0.95, {"label": "legal", "probability": 0.8, "abstained": False})
    trace = _trace()
    result = _run(_service(models).complete(_request(), trace))
    assert result.model == "legal"
    assert [c[0] for c in models.calls] == ["small"]
    assert models.calls[0][1].adapter == "legal"
    assert trace.escalated is False and trace.reason == "confident"
    # 100 prompt tokens at $1/M + 3 completion tokens at $2/M
    assert trace.cost is not None
    assert trace.cost.total == Decimal("0.000106")
    assert trace.cost.baseline == Decimal("0.00106")


def test_low_confidence_escalates_and_bills_both_attempts() -> None:
    models = FakeModels(0.8, {"label": "legal", "probability": 0.8, "abstained": False})
    trace = _trace()
    result = _run(_service(models).complete(_request(), trace))
    assert result.model == "large"
    assert [c[0] for c in models.calls] == ["small", "large"]
    assert models.calls[1][1].adapter is None
    assert trace.escalated and trace.reason == "low_confidence"
    assert trace.decision is not None and trace.decision.threshold == 0.9
    assert trace.cost is not None
    assert trace.cost.total == Decimal("0.000106") + Decimal("0.00106")


@pytest.mark.parametrize(
    "route",
    [
        {"label": "legal", "probability": 0.3, "abstained": False},
        {"label": "legal", "probability": 0.9, "abstained": True},
        {"label": "general", "probability": 0.9, "abstained": False},
    ],
)
def test_unsure_or_general_routes_use_base_model(route: dict[str, Any]) -> None:
    models = FakeModels(0.95, route)
    _run(_service(models).complete(_request(), _trace()))
    assert models.calls[0][1].adapter is None


def test_named_large_model_skips_router_and_cascade() -> None:
    models = FakeModels(0.1, {"label": "legal", "probability": 1.0, "abstained": False})
    trace = _trace()
    result = _run(_service(models).complete(_request("large"), trace))
    assert result.model == "large" and [c[0] for c in models.calls] == ["large"]
    assert trace.reason == "requested_large" and trace.escalated is False
    assert trace.route is None


def test_named_adapter_skips_router() -> None:
    models = FakeModels(0.95, {"label": "general", "probability": 1.0, "abstained": False})
    trace = _trace()
    _run(_service(models).complete(_request("legal"), trace))
    assert models.calls[0][1].adapter == "legal"
    assert trace.route_probability is None


def test_unknown_model_and_limits() -> None:
    service = _service(FakeModels(0.9, {}))
    with pytest.raises(NotFound) as info:
        _run(service.complete(_request("gpt-9"), _trace()))
    assert info.value.param == "model" and info.value.status == 404
    with pytest.raises(InvalidRequest) as too_many:
        _run(service.complete(_request(max_tokens=101), _trace()))
    assert too_many.value.param == "max_tokens"


@pytest.mark.parametrize("small_prob", [0.95, 0.5])
def test_stream_text_and_decision_match_non_stream(small_prob: float) -> None:
    route = {"label": "legal", "probability": 0.8, "abstained": False}

    async def collect() -> tuple[str, QueryTrace]:
        trace = _trace()
        deltas = await _service(FakeModels(small_prob, route)).open_stream(_request(), trace)
        text = "".join([d.text async for d in deltas])
        return text, trace

    text, trace = _run(collect())
    assert text == "abc"
    assert trace.escalated is (small_prob < 0.9)
    assert trace.answered_by == ("large" if trace.escalated else "legal")
    assert trace.cost is not None and trace.cost.total > 0
