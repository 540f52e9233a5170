"""The path of one query: resolve the target, route, try the small model, decide, escalate.

`QueryService` knows nothing of Ray or HTTP: it talks to the router and the two models
through the small `Backends` seam (`orchestrator.backends.seam`), so tests drive it with
in-process objects and the ingress with Serve deployment handles. What it learns goes into the
query's `QueryTrace` (trace.py), which becomes the response and the ledger row.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from typing import TypeVar

from cascade.confidence import confidence_features
from cascade.policy import (
    REASON_PREDICTED_HARD,
    CascadePolicy,
    Decision,
    decide,
    decide_before_generation,
)
from cascade.pricing import Usage
from orchestrator.backends.seam import Backends
from orchestrator.backends.types import GenerationRequest, GenerationResult, StreamDelta
from orchestrator.config import SpillwayConfig
from orchestrator.config.adapter_registry import adapter_registry_of
from orchestrator.errors import InvalidRequest, NotFound
from orchestrator.ledger.row import QUERY_TEXT_MAX_CHARS
from orchestrator.query.fallback import (
    BackendUnavailable,
    both_unavailable,
    call,
    hold_stream,
    open_stream,
)
from orchestrator.query.live_policy import LivePolicy
from orchestrator.query.request import AUTO_MODEL, ChatCompletionRequest
from orchestrator.query.streaming import HeldStream, pass_through
from orchestrator.query.target import Target
from orchestrator.query.tenancy import AdapterCatalog
from orchestrator.query.trace import QueryTrace, ms_since

T = TypeVar("T")
REASON_REQUESTED_LARGE = "requested_large"
REASON_SMALL_UNAVAILABLE = "small_unavailable"  # escalated: the small model failed
REASON_LARGE_UNAVAILABLE = "large_unavailable"  # degraded: the small answer, large failed


class QueryService:
    def __init__(self, config: SpillwayConfig, backends: Backends):
        self._config = config
        self.backends = backends
        self._small_name = config.small.served_name
        self._large_name = config.large.served_name
        self._registry = adapter_registry_of(config)
        # Who may use which adapter (tenancy.py); rebuilt when the adapter registry changes.
        self._catalog = AdapterCatalog.from_config(config)
        self._keep_text = frozenset(t.name for t in config.tenants if t.keep_query_text)
        # The cascade policy in force: the config's, until replaced (live_policy.py).
        self.live_policy = LivePolicy(config.cascade)

    @property
    def catalog(self) -> AdapterCatalog:
        """The adapter catalog, re-read when the registry file changed (one stat a call)."""
        registry = self._registry
        if registry is not None and registry.changed():
            self._catalog = AdapterCatalog.from_config(self._config, registry.load())
        return self._catalog

    # ----- request preparation -------------------------------------------------------------
    def resolve_target(self, model: str, tenant: str | None = None) -> Target:
        """What `model` means for `tenant`; another tenant's adapter is an unknown model."""
        if model == AUTO_MODEL:
            return Target("auto")
        if model == self._small_name:
            return Target("small")
        if model == self._large_name:
            return Target("large")
        if self.catalog.may_use(tenant, model):
            return Target("small", adapter=model)
        known = ", ".join(sorted(self.catalog.model_names(tenant)))
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
        """Route the query; if the router fails the small base model answers (fault 'router',
        route and adapter None)."""
        started = time.perf_counter()
        calls = self._config.router.calls
        text = routing_text(request)
        if trace.tenant in self._keep_text:  # the tenant's opt-in (tenants[].keep_query_text)
            trace.query_text = text[:QUERY_TEXT_MAX_CHARS]
        try:
            result = await call("router", calls, self.backends.route, text)
        except BackendUnavailable:
            trace.faults.append("router")
            return
        finally:
            trace.latency_ms["router"] = ms_since(started)
        trace.route, trace.route_probability = result.label, result.probability
        trace.router_version = result.artifact_version or None
        trace.small_enough_probability = result.small_enough_probability
        confident = not result.abstained
        if confident and result.probability >= self._config.router.min_probability:
            trace.adapter = self.catalog.adapter_for_label(trace.tenant, result.label)

    async def prepare(
        self, request: ChatCompletionRequest, trace: QueryTrace
    ) -> tuple[Target, GenerationRequest]:
        """Resolve the target and route; returns what the small (or large) model is asked."""
        target = self.resolve_target(request.model, trace.tenant)
        probe = self.generation_request(request, trace.query_id, None)  # validates limits
        if target.kind == "auto":
            await self._route(trace, request)
        elif target.adapter is not None:
            name = target.adapter.partition("@")[0]
            trace.route, trace.adapter = name, name
        if trace.adapter is not None:
            requested = target.adapter or trace.adapter
            trace.adapter_version = self.catalog.version_of(requested, trace.query_id)
        return target, _with_adapter(probe, trace.adapter_version or trace.adapter)

    def decide(self, trace: QueryTrace, logprobs: list[float], policy: CascadePolicy) -> Decision:
        route = route_key(trace)
        decision = decide(policy, route, logprobs)
        settings = policy.for_route(route)
        trace.signals = confidence_features(
            logprobs, quantile=settings.quantile, first_k=settings.first_k
        )
        trace.decision, trace.escalated, trace.reason = decision, decision.escalate, decision.reason
        return decision

    def skip_small(self, trace: QueryTrace, policy: CascadePolicy) -> bool:
        """The pre-generation skip: True when the difficulty scorer predicts the query too hard
        for the small model (the route's `skip_below`); the trace then records the decision."""
        decision = decide_before_generation(
            policy, route_key(trace), trace.small_enough_probability
        )
        if decision is None:
            return False
        trace.decision = decision
        return True

    def settle(self, trace: QueryTrace) -> None:
        trace.settle(self._config.small.price, self._config.large.price)

    # ----- non-streaming ------------------------------------------------------------------------
    async def complete(self, request: ChatCompletionRequest, trace: QueryTrace) -> GenerationResult:
        """Answer one query; the trace records route, decision, usage, latencies and cost."""
        policy = self.live_policy.policy  # one policy decides the whole query
        target, gen = await self.prepare(request, trace)
        if target.kind == "large":
            return await self._run_large(trace, gen, REASON_REQUESTED_LARGE)
        if self.skip_small(trace, policy):
            return await self._run_large(trace, gen, REASON_PREDICTED_HARD)
        attempt = call("small", self._config.small.calls, self.backends.small_generate, gen)
        small = await self._try_small(trace, attempt)
        if small is None:
            return await _or_both_unavailable(self._run_large(trace, gen, REASON_SMALL_UNAVAILABLE))
        trace.small_usage = Usage(small.prompt_tokens, small.completion_tokens)
        if not self.decide(trace, small.token_logprobs, policy).escalate:
            trace.answered_by = small.model
            self.settle(trace)
            return small
        try:
            return await self._run_large(trace, gen, trace.reason)
        except BackendUnavailable:
            self._degrade(trace, small.model)
            return small

    async def _try_small(self, trace: QueryTrace, attempt: Awaitable[T]) -> T | None:
        """The small model's answer, or None when it failed (fault 'small')."""
        started = time.perf_counter()
        try:
            return await attempt
        except BackendUnavailable:
            trace.faults.append("small")
            return None
        finally:
            trace.latency_ms["small"] = ms_since(started)

    def _degrade(self, trace: QueryTrace, small_model: str) -> None:
        """The large model failed after a low-confidence small answer: return that answer."""
        trace.degraded, trace.reason = True, REASON_LARGE_UNAVAILABLE
        trace.answered_by = small_model
        self.settle(trace)

    async def _run_large(
        self, trace: QueryTrace, gen: GenerationRequest, reason: str
    ) -> GenerationResult:
        trace.escalated = reason != REASON_REQUESTED_LARGE
        trace.reason = reason
        started = time.perf_counter()
        calls = self._config.large.calls
        try:
            large = await call(
                "large", calls, self.backends.large_generate, _with_adapter(gen, None)
            )
        except BackendUnavailable:
            trace.faults.append("large")
            raise
        finally:
            trace.latency_ms["large"] = ms_since(started)
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
        answer is passed through live: `orchestrator.query.streaming`), so request errors and the
        decision are known before the first byte goes out. Fallbacks (small -> large, large ->
        the small answer flagged degraded) are decided before the first byte too: an escalated
        query's large stream is awaited to its first delta while the small stream stays open,
        and closed (billed for what it generated) only once the large one answers. A failure
        after the first byte is an in-band error."""
        policy = self.live_policy.policy  # one policy decides the whole query
        target, gen = await self.prepare(request, trace)
        if target.kind == "large":
            return await self._open_large(trace, gen, REASON_REQUESTED_LARGE)
        if self.skip_small(trace, policy):
            return await self._open_large(trace, gen, REASON_PREDICTED_HARD)
        started = time.perf_counter()
        k = policy.for_route(route_key(trace)).stream_decide_after_tokens
        calls = self._config.small.calls
        head = await self._try_small(
            trace, hold_stream("small", calls, self.backends.small_stream, gen, k)
        )
        if head is None:
            return await _or_both_unavailable(
                self._open_large(trace, gen, REASON_SMALL_UNAVAILABLE)
            )
        trace.small_usage = head.usage()
        small_model = trace.adapter or self._small_name
        if self.decide(trace, head.logprobs(k), policy).escalate:
            try:
                large = await self._open_large(trace, gen, trace.reason)
            except BackendUnavailable:
                self._degrade(trace, small_model)
                return self._stream_small(trace, head, started)
            await head.close()  # the large model answers: stop the small one
            return large
        trace.answered_by = small_model
        return self._stream_small(trace, head, started)

    def _stream_small(
        self, trace: QueryTrace, head: HeldStream, started: float
    ) -> AsyncIterator[StreamDelta]:
        """The small answer: held deltas, then (decided early) the rest live."""
        held_whole = head.finished

        def on_delta(delta: StreamDelta) -> None:
            trace.small_usage = Usage(delta.prompt_tokens, delta.completion_tokens)

        def on_end() -> None:
            if not held_whole:  # the small model finished only now
                trace.latency_ms["small"] = ms_since(started)
            self.settle(trace)

        return pass_through(head, on_delta, on_end)

    async def _open_large(
        self, trace: QueryTrace, gen: GenerationRequest, reason: str
    ) -> AsyncIterator[StreamDelta]:
        """Open the large model's stream and wait for its first delta (raises
        BackendUnavailable before any byte is sent); the rest is passed through live."""
        trace.escalated = reason != REASON_REQUESTED_LARGE
        trace.reason = reason
        started = time.perf_counter()
        try:
            deltas = await open_stream(
                "large", self._config.large.calls, self.backends.large_stream,
                _with_adapter(gen, None),
            )  # fmt: skip
        except BackendUnavailable:
            trace.faults.append("large")
            trace.latency_ms["large"] = ms_since(started)
            raise
        trace.answered_by = self._large_name
        return self._pipe_large(trace, deltas, started)

    async def _pipe_large(
        self, trace: QueryTrace, deltas: AsyncIterator[StreamDelta], started: float
    ) -> AsyncIterator[StreamDelta]:
        last: StreamDelta | None = None
        try:
            async for delta in deltas:
                last = delta
                yield delta
        finally:  # a failure mid-stream still bills the tokens that were generated
            trace.latency_ms["large"] = ms_since(started)
            if last is not None:
                trace.large_usage = Usage(last.prompt_tokens, last.completion_tokens)
        self.settle(trace)


async def _or_both_unavailable(large: Awaitable[T]) -> T:
    """The large model's answer after the small one failed, or a 503 naming both."""
    try:
        return await large
    except BackendUnavailable as error:
        raise both_unavailable() from error


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
