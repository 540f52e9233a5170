"""Calling one deployment with a time limit and retries, and what a failure of it means.

A call either returns, raises a request error unchanged (the request's fault: an unknown
adapter, a prompt too long; retrying cannot help and no fallback should hide it), or raises
`BackendUnavailable` naming the stage that failed. Transient failures (a replica that died,
an unreachable or overloaded deployment, a remote server's 5xx) are retried `retries` times
with a doubling backoff; a timed-out attempt is not retried (it has spent its time budget).

Streams: opening one waits for its first delta, retrying the open like a call; after that
each next delta has `timeout_s`, and a failure is the caller's to report (bytes may be out).
`QueryService` decides what to do with a `BackendUnavailable` (see docs/cluster.md, Faults).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from orchestrator.backends.llm import LLMRequestError, StreamDelta
from orchestrator.config.settings import CallSettings
from orchestrator.errors import ServiceUnavailable, SpillwayError
from orchestrator.query.streaming import HeldStream, close_stream, hold

T = TypeVar("T")
Arg = TypeVar("Arg")

STAGES = ("router", "small", "large")


class BackendUnavailable(ServiceUnavailable):
    """A deployment failed after its retries, or timed out. A 503 with Retry-After when it
    reaches the client (code `<stage>_unavailable`)."""

    def __init__(self, stage: str, failure: BaseException):
        what = "timed out" if isinstance(failure, TimeoutError) else "failed"
        detail = f": {type(failure).__name__}" if not isinstance(failure, TimeoutError) else ""
        super().__init__(
            f"The {stage} model backend {what}{detail}; retry later.",
            code=f"{stage}_unavailable",
        )
        self.stage = stage
        self.failure = failure  # not `cause`: the ingress unwraps Ray errors by that name


def both_unavailable() -> ServiceUnavailable:
    """The small model failed and so did the large one it fell back to."""
    return ServiceUnavailable(
        "Both the small and the large model are unavailable; retry later.",
        code="models_unavailable",
    )


def unwrap(error: BaseException) -> BaseException:
    """The deployment's own exception when Ray wrapped it (RayTaskError.cause)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error


def is_request_error(error: BaseException) -> bool:
    """Whether the request itself is at fault: never retried, never hidden by a fallback."""
    return isinstance(unwrap(error), LLMRequestError | SpillwayError)


async def with_retries(stage: str, calls: CallSettings, attempt: Callable[[], Awaitable[T]]) -> T:
    """Run `attempt` until it succeeds, retrying transient failures with backoff."""
    tries = 0
    while True:
        try:
            return await attempt()
        except BackendUnavailable:
            raise
        except Exception as error:
            if is_request_error(error):
                raise unwrap(error) from None
            if isinstance(error, TimeoutError) or tries >= calls.retries:
                raise BackendUnavailable(stage, error) from error
        await asyncio.sleep(calls.backoff_s * 2**tries)
        tries += 1


async def call(
    stage: str, calls: CallSettings, function: Callable[[Arg], Awaitable[T]], argument: Arg
) -> T:
    """`await function(argument)` with the stage's timeout and retries."""

    async def attempt() -> T:
        return await within(calls.timeout_s, function(argument))

    return await with_retries(stage, calls, attempt)


async def within(timeout_s: float, awaitable: Awaitable[T]) -> T:
    """`asyncio.wait_for` without its extra task: the awaitable runs in the caller's task
    (one event-loop turn less per call, on the request path) and is cancelled the same way
    when the time is up (TimeoutError)."""
    async with asyncio.timeout(timeout_s):
        return await awaitable


async def _next(deltas: AsyncIterator[StreamDelta], timeout_s: float) -> StreamDelta:
    return await within(timeout_s, anext(deltas))


async def _close(deltas: AsyncIterator[StreamDelta]) -> None:
    """Stop a stream we give up on (`close_stream`); it may already have failed, so this is
    best effort."""
    with contextlib.suppress(Exception):
        await close_stream(deltas)


async def _first(
    open_: Callable[[], AsyncIterator[StreamDelta]], timeout_s: float
) -> tuple[StreamDelta, AsyncIterator[StreamDelta]]:
    deltas = aiter(open_())
    try:
        first = await _next(deltas, timeout_s)
    except StopAsyncIteration:
        await _close(deltas)
        raise RuntimeError("the stream ended before its first delta") from None
    except BaseException:
        await _close(deltas)
        raise
    return first, deltas


async def open_stream(
    stage: str,
    calls: CallSettings,
    function: Callable[[Arg], AsyncIterator[StreamDelta]],
    argument: Arg,
) -> AsyncIterator[StreamDelta]:
    """Open a stream and wait for its first delta (with timeout and retries); the returned
    iterator yields that delta and then the rest, each next one within `timeout_s`."""
    first, deltas = await with_retries(
        stage, calls, lambda: _first(lambda: function(argument), calls.timeout_s)
    )
    return _chain(stage, calls.timeout_s, first, deltas)


async def _chain(
    stage: str, timeout_s: float, first: StreamDelta, deltas: AsyncIterator[StreamDelta]
) -> AsyncIterator[StreamDelta]:
    """`first`, then the rest of `deltas`, each within `timeout_s`; closing this early (a
    cascade that decided after k tokens, a client gone) cancels the underlying stream."""
    exhausted = False
    try:
        yield first
        while True:
            try:
                delta = await _next(deltas, timeout_s)
            except StopAsyncIteration:
                exhausted = True
                return
            except TimeoutError as error:
                raise BackendUnavailable(stage, error) from error
            yield delta
    finally:
        if not exhausted:
            await _close(deltas)


async def hold_stream(
    stage: str,
    calls: CallSettings,
    function: Callable[[Arg], AsyncIterator[StreamDelta]],
    argument: Arg,
    decide_after: int | None,
) -> HeldStream:
    """The stream's first `decide_after` tokens (every delta when None), held before any byte
    is sent, so a failure while holding is retried like a call's; the rest stays open in
    `HeldStream.rest`, each next delta within `timeout_s`."""

    async def attempt() -> HeldStream:
        first, deltas = await _first(lambda: function(argument), calls.timeout_s)
        return await hold(_chain(stage, calls.timeout_s, first, deltas), decide_after)

    return await with_retries(stage, calls, attempt)
