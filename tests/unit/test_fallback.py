"""Fallbacks of the query path with in-process backends that fail or hang: retries, timeouts,
small -> large, large -> degraded small answer, both -> 503; streaming included."""

from __future__ import annotations

import asyncio
import copy
from decimal import Decimal
from typing import Any

import pytest

from orchestrator.backends.llm import UnknownAdapterError
from orchestrator.config import validate_config_dict
from orchestrator.errors import NotFound, ServiceUnavailable
from orchestrator.query.fallback import BackendUnavailable
from orchestrator.query.request import ChatCompletionRequest
from orchestrator.query.service import QueryService
from orchestrator.query.trace import QueryTrace
from tests.fakes import CONFIG, HANG, MID_STREAM, FakeModels

LEGAL = {"label": "legal", "probability": 0.8, "abstained": False}
SMALL_COST = Decimal("0.000106")  # 100 prompt tokens at $1/M + 3 completion tokens at $2/M
LARGE_COST = Decimal("0.00106")  # the same tokens at $10/M and $20/M
FAST_CALLS = {"timeout_s": 0.2, "retries": 1, "backoff_s": 0.0}


def _service(models: FakeModels) -> QueryService:
    data = copy.deepcopy(CONFIG)
    for section in ("router", "small", "large"):
        data[section]["calls"] = FAST_CALLS
    return QueryService(validate_config_dict(data), models.backends())


def _request(model: str = "auto", stream: bool = False) -> ChatCompletionRequest:
    messages = [{"role": "user", "content": "q"}]
    return ChatCompletionRequest(model=model, messages=messages, stream=stream)


def _complete(models: FakeModels, model: str = "auto") -> tuple[Any, QueryTrace]:
    trace = QueryTrace("q-1", "t", model_requested=model, stream=False)
    result = asyncio.run(_service(models).complete(_request(model), trace))
    return result, trace


def _stream(models: FakeModels, model: str = "auto") -> tuple[str, QueryTrace]:
    trace = QueryTrace("q-1", "t", model_requested=model, stream=True)

    async def collect() -> str:
        deltas = await _service(models).open_stream(_request(model, stream=True), trace)
        return "".join([delta.text async for delta in deltas])

    return asyncio.run(collect()), trace


def _total(trace: QueryTrace) -> Decimal:
    assert trace.cost is not None
    return trace.cost.total


def test_transient_small_failure_is_retried_once() -> None:
    models = FakeModels(0.95, LEGAL, {"small": [ConnectionError("replica died"), None]})
    result, trace = _complete(models)
    assert result.model == "legal" and models.attempts["small"] == 2
    assert trace.faults == [] and trace.escalated is False and trace.reason == "confident"
    assert _total(trace) == SMALL_COST


def test_timeout_is_not_retried_and_falls_to_large() -> None:
    models = FakeModels(0.95, LEGAL, {"small": [HANG]})
    result, trace = _complete(models)
    assert models.attempts["small"] == 1 and result.model == "large"
    assert trace.escalated and trace.reason == "small_unavailable" and trace.faults == ["small"]
    assert trace.answered_by == "large" and _total(trace) == LARGE_COST  # no small tokens known
    assert trace.latency_ms["small"] >= 200


def test_small_failure_after_retries_falls_to_large() -> None:
    models = FakeModels(0.95, LEGAL, {"small": [RuntimeError("engine dead")]})
    result, trace = _complete(models)
    assert models.attempts == {"router": 1, "small": 2, "large": 1}
    assert result.text == "large says" and trace.reason == "small_unavailable"
    assert trace.info().escalated is True and trace.info().degraded is False


def test_request_errors_are_neither_retried_nor_hidden() -> None:
    models = FakeModels(0.95, LEGAL, {"small": [UnknownAdapterError("no adapter 'legal'")]})
    with pytest.raises(UnknownAdapterError):
        _complete(models)
    assert models.attempts["small"] == 1 and models.attempts["large"] == 0


def test_router_failure_uses_the_small_base_model() -> None:
    models = FakeModels(0.95, LEGAL, {"router": [ConnectionError("router down")]})
    result, trace = _complete(models)
    assert models.attempts["router"] == 2  # retried once
    assert models.calls[0][1].adapter is None and result.model == "small"
    assert trace.route is None and trace.adapter is None and trace.faults == ["router"]
    assert trace.reason == "confident"  # the base route's default threshold


def test_router_timeout_uses_the_small_base_model() -> None:
    models = FakeModels(0.95, LEGAL, {"router": [HANG]})
    _, trace = _complete(models)
    assert models.attempts["router"] == 1 and trace.faults == ["router"]
    assert trace.latency_ms["router"] >= 200


def test_large_failure_after_low_confidence_returns_degraded_small_answer() -> None:
    models = FakeModels(0.8, LEGAL, {"large": [ConnectionError("large down")]})
    result, trace = _complete(models)
    assert result.text == "small says" and result.model == "legal"
    assert models.attempts["large"] == 2
    info = trace.info()
    assert info.degraded is True and info.reason == "large_unavailable" and info.escalated
    assert info.answered_by == "legal" and info.faults == ["large"]
    assert info.headers()["x-spillway-degraded"] == "true"
    assert trace.decision is not None and trace.decision.escalate  # the decision is kept
    assert _total(trace) == SMALL_COST


def test_both_models_failing_is_a_503_with_retry_after() -> None:
    models = FakeModels(0.95, LEGAL, {"small": [HANG], "large": [RuntimeError("down")]})
    with pytest.raises(ServiceUnavailable) as info:
        _complete(models)
    assert info.value.status == 503 and info.value.code == "models_unavailable"
    assert info.value.headers() == {"Retry-After": "5"}


def test_named_large_model_failure_is_a_503() -> None:
    models = FakeModels(0.95, LEGAL, {"large": [HANG]})
    with pytest.raises(BackendUnavailable) as info:
        _complete(models, model="large")
    assert info.value.code == "large_unavailable" and info.value.headers()["Retry-After"]
    assert models.attempts == {"large": 1}


def test_unknown_model_still_404_when_backends_are_down() -> None:
    models = FakeModels(0.95, LEGAL, {"small": [HANG], "large": [HANG]})
    with pytest.raises(NotFound):
        _complete(models, model="gpt-9")


# ----- streams ---------------------------------------------------------------------------------
def test_stream_small_failure_streams_large() -> None:
    models = FakeModels(0.95, LEGAL, {"small": [ConnectionError("gone")]})
    text, trace = _stream(models)
    assert text == "abc" and trace.answered_by == "large"
    assert trace.reason == "small_unavailable" and trace.faults == ["small"]
    assert models.attempts["small"] == 2 and _total(trace) == LARGE_COST


def test_stream_small_failure_mid_stream_is_retried() -> None:
    models = FakeModels(0.95, LEGAL, {"small": [MID_STREAM, None]})
    text, trace = _stream(models)
    assert text == "abc" and trace.answered_by == "legal" and trace.faults == []


def test_stream_large_failure_before_first_delta_replays_small_degraded() -> None:
    models = FakeModels(0.8, LEGAL, {"large": [HANG]})
    text, trace = _stream(models)
    assert text == "abc" and trace.degraded and trace.answered_by == "legal"
    assert trace.reason == "large_unavailable" and trace.faults == ["large"]
    assert _total(trace) == SMALL_COST


def test_stream_both_failing_raises_before_the_first_byte() -> None:
    models = FakeModels(0.8, LEGAL, {"small": [HANG], "large": [ConnectionError("x")]})
    with pytest.raises(ServiceUnavailable) as info:
        _stream(models)
    assert info.value.code == "models_unavailable"


def test_stream_large_failure_mid_stream_is_raised_and_billed() -> None:
    models = FakeModels(0.8, LEGAL, {"large": [MID_STREAM]})
    trace = QueryTrace("q-1", "t", model_requested="auto", stream=True)
    seen: list[str] = []

    async def consume() -> None:
        deltas = await _service(models).open_stream(_request(stream=True), trace)
        async for delta in deltas:
            seen.append(delta.text)

    with pytest.raises(ConnectionError):
        asyncio.run(consume())
    assert seen == ["a"] and trace.degraded is False
    assert trace.large_usage is not None and trace.large_usage.completion_tokens == 1
