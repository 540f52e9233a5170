"""Streams decided after the first k tokens: early first delta, cancel on escalation, billing."""

from __future__ import annotations

import asyncio
import copy
import math
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from orchestrator.backends.llm import GenerationRequest, StreamDelta
from orchestrator.backends.seam import Backends
from orchestrator.config import validate_config_dict
from orchestrator.query.request import ChatCompletionRequest
from orchestrator.query.service import QueryService
from orchestrator.query.streaming import hold
from orchestrator.query.trace import QueryTrace
from tests.fakes import CONFIG, FakeModels

ROUTE = {"label": "legal", "probability": 0.8, "abstained": False}
SURE, UNSURE = 0.99, 0.2


class CountingSmall:
    """A small model streaming one token a delta; records how far it got and if it was stopped."""

    def __init__(self, probabilities: list[float]):
        self.probabilities = probabilities
        self.produced = 0
        self.stopped_early = False

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        try:
            for i, p in enumerate(self.probabilities):
                self.produced = i + 1
                last = i == len(self.probabilities) - 1
                yield StreamDelta(
                    text=f"s{i} ",
                    token_logprobs=[math.log(p)],
                    finish_reason="stop" if last else None,
                    prompt_tokens=100,
                    completion_tokens=i + 1,
                )
        except GeneratorExit:
            self.stopped_early = True
            raise


def _service(
    small: CountingSmall,
    k: int | None = 4,
    large_failures: list[Any] | None = None,
) -> tuple[QueryService, FakeModels]:
    data = copy.deepcopy(CONFIG)
    data["cascade"]["routes"]["legal"] = {
        "signal": "first_k",
        "first_k": 4,
        "threshold": 0.9,
        "stream_decide_after_tokens": k,
    }
    failures = None
    if large_failures is not None:
        data["large"]["calls"] = {"timeout_s": 0.2, "retries": 0}
        failures = {"large": large_failures}
    models = FakeModels(SURE, ROUTE, failures)
    backends = Backends(
        models.route,
        models.small_generate,
        small.stream,
        models.large_generate,
        lambda r: models._stream("large", r),
    )
    return QueryService(validate_config_dict(data), backends), models


def _request() -> ChatCompletionRequest:
    return ChatCompletionRequest(model="auto", messages=[{"role": "user", "content": "q"}])


def _trace() -> QueryTrace:
    return QueryTrace("q-1", "t", model_requested="auto", stream=True)


def test_accepted_answer_streams_before_the_small_model_finishes() -> None:
    # sure for 4 tokens, then unsure: the whole-answer first_k signal is the same (first 4)
    small = CountingSmall([SURE] * 4 + [UNSURE] * 6)
    service, models = _service(small)

    async def run() -> tuple[int, list[str], QueryTrace]:
        trace = _trace()
        deltas = await service.open_stream(_request(), trace)
        first = await anext(deltas)
        produced_at_first = small.produced
        rest = [d.text async for d in deltas]
        return produced_at_first, [first.text, *rest], trace

    produced_at_first, texts, trace = asyncio.run(run())
    assert produced_at_first == 4  # decided after k=4 of 10 tokens
    assert texts == [f"s{i} " for i in range(10)]
    assert (trace.escalated, trace.reason, trace.answered_by) == (False, "confident", "legal")
    assert [c[0] for c in models.calls] == []  # the large model never ran
    assert trace.small_usage is not None and trace.small_usage.completion_tokens == 10
    # 100 prompt tokens at $1/M + 10 completion tokens at $2/M
    assert trace.cost is not None and trace.cost.total == Decimal("0.00012")


def test_escalation_after_k_stops_the_small_model_and_bills_its_k_tokens() -> None:
    small = CountingSmall([UNSURE] * 4 + [SURE] * 6)
    service, models = _service(small)

    async def run() -> tuple[str, QueryTrace]:
        trace = _trace()
        deltas = await service.open_stream(_request(), trace)
        return "".join([d.text async for d in deltas]), trace

    text, trace = asyncio.run(run())
    assert text == "abc"  # the large model's stream
    assert [c[0] for c in models.calls] == ["large"]
    assert small.produced == 4 and small.stopped_early
    assert (trace.escalated, trace.reason) == (True, "low_confidence")
    assert trace.decision is not None and trace.decision.confidence == UNSURE
    assert trace.small_usage is not None and trace.small_usage.completion_tokens == 4
    assert trace.large_usage is not None and trace.large_usage.completion_tokens == 3
    # small: 100 * $1/M + 4 * $2/M; large: 100 * $10/M + 3 * $20/M
    assert trace.cost is not None and trace.cost.total == Decimal("0.000108") + Decimal("0.00106")


def test_without_k_the_whole_answer_is_held() -> None:
    small = CountingSmall([SURE] * 4 + [UNSURE] * 6)
    service, _ = _service(small, k=None)

    async def run() -> int:
        deltas = await service.open_stream(_request(), _trace())
        await anext(deltas)
        produced = small.produced
        await deltas.aclose()  # type: ignore[attr-defined]
        return produced

    assert asyncio.run(run()) == 10


def test_client_leaving_mid_stream_stops_the_small_model_and_keeps_usage() -> None:
    small = CountingSmall([SURE] * 10)
    service, _ = _service(small)

    async def run() -> QueryTrace:
        trace = _trace()
        deltas = await service.open_stream(_request(), trace)
        for _ in range(6):
            await anext(deltas)
        await deltas.aclose()  # type: ignore[attr-defined]
        return trace

    trace = asyncio.run(run())
    assert small.stopped_early and small.produced == 6
    assert trace.small_usage is not None and trace.small_usage.completion_tokens == 6
    assert trace.cost is None  # not settled: the ingress records the failure and bills it


def test_short_answers_finish_inside_the_window() -> None:
    async def run() -> Any:
        head = await hold(CountingSmall([SURE] * 2).stream(_dummy()), 4)
        return head.finished, head.logprobs(4), head.usage()

    finished, logprobs, usage = asyncio.run(run())
    assert finished and len(logprobs) == 2 and usage.completion_tokens == 2


def _dummy() -> GenerationRequest:
    return GenerationRequest(messages=[{"role": "user", "content": "q"}])


def test_early_escalation_with_the_large_model_down_streams_the_whole_small_answer() -> None:
    """Decided after k tokens, escalated, large fails: the small stream was kept open, so the
    client gets the whole small answer flagged degraded, billed for all of its tokens."""
    small = CountingSmall([UNSURE] * 4 + [SURE] * 6)
    service, _ = _service(small, large_failures=[ConnectionError("down")])

    async def run() -> tuple[list[str], QueryTrace]:
        trace = _trace()
        deltas = await service.open_stream(_request(), trace)
        return [d.text async for d in deltas], trace

    texts, trace = asyncio.run(run())
    assert texts == [f"s{i} " for i in range(10)]
    assert trace.degraded and trace.reason == "large_unavailable" and trace.faults == ["large"]
    assert (trace.escalated, trace.answered_by) == (True, "legal")
    assert trace.small_usage is not None and trace.small_usage.completion_tokens == 10
    assert trace.large_usage is None
    # 100 prompt tokens at $1/M + 10 completion tokens at $2/M
    assert trace.cost is not None and trace.cost.total == Decimal("0.00012")
