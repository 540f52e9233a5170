"""The serve-time difficulty skip: `skip_below` with a difficulty scorer's probability."""

from __future__ import annotations

import asyncio
import copy
from decimal import Decimal
from typing import Any

import pytest

from orchestrator.config import ConfigError, validate_config_dict
from orchestrator.query.request import ChatCompletionRequest
from orchestrator.query.service import QueryService
from orchestrator.query.trace import QueryTrace
from tests.fakes import CONFIG, FakeModels


def _config(difficulty: bool = True) -> dict[str, Any]:
    config = copy.deepcopy(CONFIG)
    if difficulty:
        config["router"]["difficulty_artifact"] = "/d"
    config["cascade"]["routes"]["legal"] = {"threshold": 0.5, "skip_below": 0.4}
    return config


def _ask(
    p: float | None, model: str = "auto", stream: bool = False
) -> tuple[FakeModels, QueryTrace]:
    route = {"label": "legal", "probability": 0.9, "small_enough_probability": p}
    models = FakeModels(0.95, route)
    service = QueryService(validate_config_dict(_config()), models.backends())
    request = ChatCompletionRequest(model=model, messages=[{"role": "user", "content": "q"}])
    trace = QueryTrace("q-1", "t", model_requested=model, stream=stream)

    async def go() -> None:
        if stream:
            async for _ in await service.open_stream(request, trace):
                pass
        else:
            await service.complete(request, trace)

    asyncio.run(go())
    return models, trace


@pytest.mark.parametrize("stream", [False, True])
def test_predicted_hard_goes_straight_to_large_with_no_small_attempt(stream: bool) -> None:
    models, trace = _ask(0.2, stream=stream)
    assert [c[0] for c in models.calls] == ["large"]
    assert models.attempts["small"] == 0
    assert trace.escalated and trace.reason == "predicted_hard"
    assert trace.small_usage is None and trace.signals is None
    decision = trace.decision
    assert decision is not None
    assert (decision.signal, decision.confidence, decision.threshold) == ("difficulty", 0.2, 0.4)
    assert trace.cost is not None
    assert trace.cost.small == Decimal(0)
    assert trace.cost.total == Decimal("0.00106")  # 100 prompt at $10/M + 3 completion at $20/M
    row = trace.ledger_row(status=200)
    assert row.escalation_reason == "predicted_hard" and row.small_prompt_tokens == 0
    assert row.confidence_signal == "difficulty"


def test_easy_enough_tries_the_small_model() -> None:
    models, trace = _ask(0.6)
    assert [c[0] for c in models.calls] == ["small"]
    assert trace.reason == "confident" and not trace.escalated
    assert trace.signals is not None and trace.signals["mean_prob"] == pytest.approx(0.95)


def test_no_scorer_probability_never_skips() -> None:
    models, trace = _ask(None)
    assert [c[0] for c in models.calls] == ["small"] and trace.reason == "confident"


def test_named_adapter_is_not_routed_so_not_skipped() -> None:
    models, trace = _ask(0.1, model="legal")
    assert models.calls[0][0] == "small" and trace.reason == "confident"


def test_skip_below_without_a_scorer_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"cascade.routes.legal.skip_below.*difficulty_artifact"):
        validate_config_dict(_config(difficulty=False))
