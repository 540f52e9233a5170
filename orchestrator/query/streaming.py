"""Streams decided early: hold the small model's first k tokens, decide, then pass or cancel.

With a route's ``stream_decide_after_tokens: k`` the cascade decides on the first k tokens'
log-probabilities (``HeldStream.logprobs``) instead of the whole answer:

* accepted: the held deltas are replayed and the rest of the small stream is passed through
  live (``pass_through``), so the first byte goes out after k tokens, not after the answer;
* escalated: the small stream is cancelled (``HeldStream.close``) and its tokens so far are
  billed; the large model's stream follows.

Without k (or when the small answer ends within k tokens) the whole answer is held, as before.
Usage is always the last delta's counts: vLLM and the remote backends send cumulative counts.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from cascade.pricing import Usage
from orchestrator.backends.llm import StreamDelta

__all__ = ["HeldStream", "close_stream", "hold", "pass_through"]


@dataclass
class HeldStream:
    """The deltas read so far and, if the answer is not finished, the open stream."""

    held: list[StreamDelta] = field(default_factory=list)
    rest: AsyncIterator[StreamDelta] | None = None

    @property
    def finished(self) -> bool:
        return self.rest is None

    def logprobs(self, limit: int | None = None) -> list[float]:
        values = [lp for delta in self.held for lp in delta.token_logprobs]
        return values if limit is None else values[:limit]

    def usage(self) -> Usage | None:
        """Tokens billed so far: the last delta's (cumulative) counts."""
        if not self.held:
            return None
        last = self.held[-1]
        return Usage(last.prompt_tokens, last.completion_tokens)

    async def close(self) -> None:
        """Stop the small model: the held tokens are all it is billed for."""
        if self.rest is not None:
            rest, self.rest = self.rest, None
            await close_stream(rest)


async def close_stream(stream: Any) -> None:
    """Close an async generator, or cancel a Ray Serve streaming response."""
    closer = getattr(stream, "aclose", None) or getattr(stream, "cancel", None)
    if closer is not None:
        result = closer()
        if inspect.isawaitable(result):
            await result


async def hold(stream: AsyncIterator[StreamDelta], decide_after: int | None) -> HeldStream:
    """Read deltas until ``decide_after`` tokens are held, or the whole stream when None."""
    iterator = aiter(stream)
    head = HeldStream(rest=iterator)
    tokens = 0
    try:
        while decide_after is None or tokens < decide_after:
            try:
                delta = await anext(iterator)
            except StopAsyncIteration:
                head.rest = None
                break
            head.held.append(delta)
            tokens += len(delta.token_logprobs)
    except BaseException:
        await head.close()
        raise
    return head


async def pass_through(
    head: HeldStream, on_delta: Callable[[StreamDelta], None], on_end: Callable[[], None]
) -> AsyncIterator[StreamDelta]:
    """Replay the held deltas, then the rest of the stream live.

    ``on_delta`` sees every delta (to keep usage current, so a client that leaves mid-stream
    is billed for what was generated); ``on_end`` runs once the stream is exhausted.
    """
    try:
        for delta in head.held:
            on_delta(delta)
            yield delta
        if head.rest is not None:
            async for delta in head.rest:
                on_delta(delta)
                yield delta
            head.rest = None
        on_end()
    finally:
        await head.close()
