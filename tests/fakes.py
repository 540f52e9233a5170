"""In-process stand-ins for the router and the two models (no Ray, no vLLM)."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.backends.llm import GenerationRequest, GenerationResult, StreamDelta
from orchestrator.backends.seam import Backends
from orchestrator.backends.types import RouteResult

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from orchestrator.config import SpillwayConfig
    from orchestrator.ledger import Ledger

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


HANG = "hang"  # a failure plan step: never answer (the caller's timeout must end it)
MID_STREAM = "mid_stream"  # streams: one delta, then a failure


def route_result(fields: dict[str, Any]) -> RouteResult:
    """The router deployment's answer from the few fields a test names (label, probability,
    abstained); the rest as a router that names no runner-up and no artifact version."""
    return RouteResult(
        label=fields["label"],
        probability=float(fields["probability"]),
        runner_up=fields.get("runner_up"),
        runner_up_probability=float(fields.get("runner_up_probability", 0.0)),
        abstained=bool(fields.get("abstained", False)),
        artifact_version=fields.get("artifact_version", ""),
        small_enough_probability=fields.get("small_enough_probability"),
    )


class FakeModels:
    """Small answers with a fixed per-token probability; large always answers 'big'.

    `failures` plans what each stage (router, small, large) does per attempt: a list of steps,
    each an exception to raise, HANG, MID_STREAM or None (answer); the last step repeats.
    `attempts` counts the attempts per stage."""

    def __init__(
        self,
        small_prob: float,
        route: dict[str, Any],
        failures: dict[str, list[Any]] | None = None,
    ):
        self.small_prob = small_prob
        self.route_result = route
        self.failures = failures or {}
        self.attempts: Counter[str] = Counter()
        self.calls: list[tuple[str, GenerationRequest]] = []

    def _step(self, stage: str) -> Any:
        self.attempts[stage] += 1
        plan = self.failures.get(stage)
        if not plan:
            return None
        return plan.pop(0) if len(plan) > 1 else plan[0]

    async def _act(self, step: Any) -> None:
        if step == HANG:
            await asyncio.sleep(3600)
        if isinstance(step, BaseException):
            raise step

    async def route(self, text: str) -> RouteResult:
        await self._act(self._step("router"))
        return route_result(self.route_result)

    def _result(self, which: str, request: GenerationRequest) -> GenerationResult:
        self.calls.append((which, request))
        prob = self.small_prob if which == "small" else 0.99
        # As the LLM deployment: the adapter's name, without the registry's version.
        model = request.adapter.partition("@")[0] if request.adapter else which
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
        await self._act(self._step("small"))
        return self._result("small", request)

    async def large_generate(self, request: GenerationRequest) -> GenerationResult:
        await self._act(self._step("large"))
        return self._result("large", request)

    async def _stream(self, which: str, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        step = self._step(which)
        if step != MID_STREAM:
            await self._act(step)
        result = self._result(which, request)
        for i, word in enumerate(["a", "b", "c"]):
            if i == 1 and step == MID_STREAM:
                raise ConnectionError(f"{which} replica died mid-stream")
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


@contextmanager
def in_process_app(
    config: SpillwayConfig, models: Any, journal_dir: Path | None = None
) -> Iterator[tuple[TestClient, Ledger]]:
    """The real ingress app over `models` (anything with `backends()`) and a started ledger
    (journaled in `journal_dir`, if given), behind a TestClient; the ledger is closed
    afterwards."""
    from fastapi.testclient import TestClient

    from orchestrator.api.app import create_app
    from orchestrator.builder import assemble_replica
    from orchestrator.ledger import Ledger

    ledger = Ledger(config.ledger.url, journal_dir=journal_dir)
    ledger.start()
    parts = assemble_replica(config, models.backends(), ledger)
    try:
        with TestClient(create_app(parts)) as client:
            yield client, ledger
    finally:
        ledger.close()
