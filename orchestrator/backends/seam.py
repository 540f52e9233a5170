"""`Backends`: how the query path reaches the router and the two models.

The query path (`orchestrator.query`) calls these five functions and nothing else of a backend,
so it runs the same over Serve deployment handles (`handles.handle_backends`, built by the
builder) and over in-process objects in tests. Each returns the same types in both cases.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from orchestrator.backends.types import (
    GenerationRequest,
    GenerationResult,
    RouteResult,
    StreamDelta,
)

__all__ = ["Backends", "ReadyCheck"]

ReadyCheck = Callable[[], Awaitable[dict[str, str]]]
"""Raises when a backend cannot answer; else facts for /readyz (the router's version)."""


@dataclass(frozen=True)
class Backends:
    """The router and the models, as async functions."""

    route: Callable[[str], Awaitable[RouteResult]]
    small_generate: Callable[[GenerationRequest], Awaitable[GenerationResult]]
    small_stream: Callable[[GenerationRequest], AsyncIterator[StreamDelta]]
    large_generate: Callable[[GenerationRequest], Awaitable[GenerationResult]]
    large_stream: Callable[[GenerationRequest], AsyncIterator[StreamDelta]]
    ready: ReadyCheck | None = None
