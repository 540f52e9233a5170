"""The path of one query: resolve the target, route, try the small model, decide, escalate.

`QueryService` knows nothing of Ray or HTTP: it talks to the router and the two models
through the small `Backends` seam, so tests can drive it with in-process objects and the
ingress with Serve deployment handles.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cascade.policy import Decision, decide
from cascade.pricing import QueryCost, Usage, query_cost
from orchestrator.config import SpillwayConfig
from orchestrator.errors import InvalidRequest, NotFound
from orchestrator.llm import GenerationRequest, GenerationResult, StreamDelta
from orchestrator.protocol import AUTO_MODEL, ChatCompletionRequest, SpillwayInfo
from orchestrator.streaming import HeldStream, hold, pass_through

REASON_REQUESTED_LARGE = "requested_large"


@dataclass(frozen=True)
class Backends:
    """How the service reaches the router and the models (handles, or objects in tests)."""

    route: Callable[[str], Awaitable[Any]]
    small_generate: Callable[[GenerationRequest], Awaitable[GenerationResult]]
    small_stream: Callable[[GenerationRequest], AsyncIterator[StreamDelta]]
    large_generate: Callable[[GenerationRequest], Awaitable[GenerationResult]]
    large_stream: Callable[[GenerationRequest], AsyncIterator[StreamDelta]]
    ready: Callable[[], Awaitable[dict[str, Any]]] | None = None


@dataclass(frozen=True)
class Target:
    """Where a request goes before the cascade: through the router, to the small model
    (optionally with a named adapter), or straight to the large model."""

    kind: str  # "auto" | "small" | "large"
    adapter: str | None = None


@dataclass
class QueryTrace:
    """Everything learned while answering one query; becomes the response and the ledger row."""

    query_id: str
    tenant: str
    model_requested: str
    stream: bool
    started: float = field(default_factory=time.perf_counter)
    route: str | None = None
    route_probability: float | None = None
    router_version: str | None = None
    adapter: str | None = None
    decision: Decision | None = None
    escalated: bool = False
    reason: str = ""
    answered_by: str = ""
    small_usage: Usage | None = None
    large_usage: Usage | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    cost: QueryCost | None = None

    def info(self) -> SpillwayInfo:
        cost = self.cost
        return SpillwayInfo(
            query_id=self.query_id,
            route=self.route,
            route_probability=self.route_probability,
            router_version=self.router_version,
            adapter=self.adapter,
            answered_by=self.answered_by,
            confidence=self.decision.confidence if self.decision else None,
            confidence_signal=self.decision.signal if self.decision else None,
            threshold=self.decision.threshold if self.decision else None,
            escalated=self.escalated,
            reason=self.reason,
            cost_usd=str(cost.total) if cost else "0",
            baseline_cost_usd=str(cost.baseline) if cost else "0",
        )


def new_query_id() -> str:
    return "q-" + uuid.uuid4().hex


class QueryService:
    def __init__(self, config: SpillwayConfig, backends: Backends):
        self._config = config
        self.backends = backends
        self._small_name = config.small.served_name
        self._large_name = config.large.served_name
        self._adapters = set(config.small.adapter_names())

    # ----- request preparation -------------------------------------------------------------
    def resolve_target(self, model: str) -> Target:
        if model == AUTO_MODEL:
            return Target("auto")
        if model == self._small_name:
            return Target("small")
        if model == self._large_name:
            return Target("large")
        if model in self._adapters:
            return Target("small", adapter=model)
        known = ", ".join(sorted({AUTO_MODEL, self._small_name, self._large_name, *self._adapters}))
        raise NotFound(
            f"The model '{model}' does not exist. Available: {known}.",
            param="model",
            code="model_not_found",
        )

    def generation_request(
        self, request: ChatCompletionRequest, query_id: str, adapter: str | None
    ) -> GenerationRequest:
        limits = self._config.limits
        max_tokens = request.requested_max_tokens() or limits.default_max_tokens
        if max_tokens > limits.max_tokens_limit:
            raise InvalidRequest(
                f"max_tokens: {max_tokens} is above this deployment's limit of "
                f"{limits.max_tokens_limit}",
                param="max_tokens",
                code="max_tokens_too_large",
            )
        if len(request.messages) > limits.max_messages:
            raise InvalidRequest(
                f"messages: at most {limits.max_messages} messages are accepted",
                param="messages",
            )
        return GenerationRequest(
            messages=[m.as_dict() for m in request.messages],
            adapter=adapter,
            max_tokens=max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stop=request.stop_list(),
            seed=request.seed,
            request_id=query_id,
        )

    # ----- the stages ---------------------------------------------------------------------------
    async def _route(self, trace: QueryTrace, request: ChatCompletionRequest) -> None:
        started = time.perf_counter()
        result = await self.backends.route(routing_text(request))
        trace.latency_ms["router"] = _ms_since(started)
        label, probability = _get(result, "label"), float(_get(result, "probability"))
        trace.route, trace.route_probability = label, probability
        trace.router_version = _get(result, "artifact_version", None)
        confident = not _get(result, "abstained", False)
        if confident and probability >= self._config.router.min_probability:
            trace.adapter = self._config.router.adapters.get(label)

    async def prepare(
        self, request: ChatCompletionRequest, trace: QueryTrace
    ) -> tuple[Target, GenerationRequest]:
        """Resolve the target and route; returns what the small (or large) model is asked."""
        target = self.resolve_target(request.model)
        probe = self.generation_request(request, trace.query_id, None)  # validates limits
        if target.kind == "auto":
            await self._route(trace, request)
        elif target.adapter is not None:
            trace.route, trace.adapter = target.adapter, target.adapter
        return target, _with_adapter(probe, trace.adapter)

    def decide(self, trace: QueryTrace, logprobs: list[float]) -> Decision:
        decision = decide(self._config.cascade, route_key(trace), logprobs)
        trace.decision, trace.escalated, trace.reason = decision, decision.escalate, decision.reason
        return decision

    def settle(self, trace: QueryTrace) -> None:
        trace.cost = query_cost(
            trace.small_usage, self._config.small.price, trace.large_usage, self._config.large.price
        )
        trace.latency_ms["total"] = _ms_since(trace.started)

    # ----- non-streaming ------------------------------------------------------------------------
    async def complete(self, request: ChatCompletionRequest, trace: QueryTrace) -> GenerationResult:
        """Answer one query; the trace records route, decision, usage, latencies and cost."""
        target, gen = await self.prepare(request, trace)
        if target.kind == "large":
            return await self._run_large(trace, gen, REASON_REQUESTED_LARGE)
        started = time.perf_counter()
        small = await self.backends.small_generate(gen)
        trace.latency_ms["small"] = _ms_since(started)
        trace.small_usage = Usage(small.prompt_tokens, small.completion_tokens)
        if not self.decide(trace, small.token_logprobs).escalate:
            trace.answered_by = small.model
            self.settle(trace)
            return small
        return await self._run_large(trace, gen, trace.reason)

    async def _run_large(
        self, trace: QueryTrace, gen: GenerationRequest, reason: str
    ) -> GenerationResult:
        trace.escalated = reason != REASON_REQUESTED_LARGE
        trace.reason = reason
        started = time.perf_counter()
        large = await self.backends.large_generate(_with_adapter(gen, None))
        trace.latency_ms["large"] = _ms_since(started)
        trace.large_usage = Usage(large.prompt_tokens, large.completion_tokens)
        trace.answered_by = large.model
        self.settle(trace)
        return large

    # ----- streaming ----------------------------------------------------------------------------
    async def open_stream(
        self, request: ChatCompletionRequest, trace: QueryTrace
    ) -> AsyncIterator[StreamDelta]:
        """Route, run the small model and decide; return the deltas of the accepted answer.

        The small model's tokens are held until the cascade has decided, on the whole answer
        or on the route's first `stream_decide_after_tokens` (then the rest of an accepted
        answer is passed through live: `orchestrator.streaming`), so request errors and the
        decision are known before the first byte goes out; an escalated query's large-model
        stream is passed through live."""
        target, gen = await self.prepare(request, trace)
        if target.kind == "large":
            return self._stream_large(trace, gen, REASON_REQUESTED_LARGE)
        started = time.perf_counter()
        k = self._config.cascade.for_route(route_key(trace)).stream_decide_after_tokens
        head = await hold(self.backends.small_stream(gen), k)
        trace.small_usage = head.usage()
        if self.decide(trace, head.logprobs(k)).escalate:
            await head.close()  # decided early: stop the small model, bill what it generated
            trace.latency_ms["small"] = _ms_since(started)
            return self._stream_large(trace, gen, trace.reason)
        trace.answered_by = gen.adapter or self._small_name
        return self._stream_small(trace, head, started)

    def _stream_small(
        self, trace: QueryTrace, head: HeldStream, started: float
    ) -> AsyncIterator[StreamDelta]:
        """The accepted small answer: held deltas, then (decided early) the rest live."""

        def on_delta(delta: StreamDelta) -> None:
            trace.small_usage = Usage(delta.prompt_tokens, delta.completion_tokens)

        def on_end() -> None:
            trace.latency_ms.setdefault("small", _ms_since(started))
            self.settle(trace)

        if head.finished:  # the whole answer was held: the small model is done already
            trace.latency_ms["small"] = _ms_since(started)

        return pass_through(head, on_delta, on_end)

    def _stream_large(
        self, trace: QueryTrace, gen: GenerationRequest, reason: str
    ) -> AsyncIterator[StreamDelta]:
        trace.escalated = reason != REASON_REQUESTED_LARGE
        trace.reason = reason
        trace.answered_by = self._large_name
        return self._pipe_large(trace, _with_adapter(gen, None))

    async def _pipe_large(
        self, trace: QueryTrace, gen: GenerationRequest
    ) -> AsyncIterator[StreamDelta]:
        started = time.perf_counter()
        last: StreamDelta | None = None
        async for delta in self.backends.large_stream(gen):
            last = delta
            yield delta
        trace.latency_ms["large"] = _ms_since(started)
        if last is not None:
            trace.large_usage = Usage(last.prompt_tokens, last.completion_tokens)
        self.settle(trace)


def route_key(trace: QueryTrace) -> str:
    """The cascade policy's route for a query: its adapter, else its route label, else base."""
    return trace.adapter or trace.route or "base"


def routing_text(request: ChatCompletionRequest) -> str:
    """The text the router classifies: the last user message (the question being asked)."""
    for message in reversed(request.messages):
        if message.role == "user":
            return message.text()
    return request.messages[-1].text()


def _with_adapter(gen: GenerationRequest, adapter: str | None) -> GenerationRequest:
    return replace(gen, adapter=adapter)


def _get(result: Any, name: str, default: Any = ...) -> Any:
    if isinstance(result, dict):
        return result[name] if default is ... else result.get(name, default)
    return getattr(result, name) if default is ... else getattr(result, name, default)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
