"""The query path's decisions with in-process backends: routing, cascade, billing, streaming."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from orchestrator.config import validate_config_dict
from orchestrator.errors import InvalidRequest, NotFound
from orchestrator.query.request import ChatCompletionRequest
from orchestrator.query.service import QueryService
from orchestrator.query.trace import QueryTrace
from tests.fakes import CONFIG, FakeModels


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
    assert models.calls[0][1].adapter == "legal@1"  # the config's adapter is version 1
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
    assert models.calls[0][1].adapter == "legal@1"  # the config's adapter is version 1
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


def test_query_text_is_kept_only_for_tenants_that_opt_in() -> None:
    route = {"label": "legal", "probability": 0.8, "abstained": False}
    default = _trace()
    _run(_service(FakeModels(0.95, route)).complete(_request(), default))
    assert default.query_text is None and default.ledger_row(status=200).query_text is None
    config = {**CONFIG, "tenants": [{"name": "t", "api_keys": ["k"], "keep_query_text": True}]}
    service = QueryService(validate_config_dict(config), FakeModels(0.95, route).backends())
    kept = _trace()
    _run(service.complete(_request(), kept))
    assert kept.ledger_row(status=200).query_text == "q"  # the routed (last user) message


class _GatedSmall(FakeModels):
    """The small model answers only once `gate` is set (a policy swap happens meanwhile)."""

    def __init__(self) -> None:
        super().__init__(0.8, {"label": "legal", "probability": 0.8, "abstained": False})
        self.gate = asyncio.Event()
        self.started = asyncio.Event()

    async def small_generate(self, request: Any) -> Any:
        self.started.set()
        await self.gate.wait()
        return await super().small_generate(request)

    async def _stream(self, which: str, request: Any) -> Any:
        if which == "small":
            self.started.set()
            await self.gate.wait()
        async for delta in super()._stream(which, request):
            yield delta


@pytest.mark.parametrize("stream", [False, True])
def test_a_query_is_decided_by_the_policy_it_started_with(stream: bool) -> None:
    """A swap while the small model answers changes the next query, not the running one."""
    from cascade.policy import CascadePolicy, RoutePolicy

    lenient = CascadePolicy(default=RoutePolicy(threshold=0.1))

    async def scenario() -> tuple[QueryTrace, QueryTrace]:
        models = _GatedSmall()
        service = _service(models)
        first, second = _trace(), _trace()

        async def ask(trace: QueryTrace) -> None:
            if stream:
                deltas = await service.open_stream(_request(), trace)
                _ = [d async for d in deltas]
            else:
                await service.complete(_request(), trace)

        running = asyncio.create_task(ask(first))
        await models.started.wait()
        service.live_policy.replace(lenient, "admin_api")
        models.gate.set()
        await running
        await ask(second)
        return first, second

    first, second = _run(scenario())
    assert first.escalated and first.decision is not None and first.decision.threshold == 0.9
    assert not second.escalated and second.decision is not None
    assert second.decision.threshold == 0.1
