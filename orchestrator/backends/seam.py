"""`Backends`: how the query path reaches the router and the two models.

The query path (`orchestrator.query`) calls these five functions and nothing else of a backend,
so it runs the same over Serve deployment handles (`handle_backends`, used by the builder) and
over in-process objects in tests. Each returns the same types in both cases.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.backends.types import (
    GenerationRequest,
    GenerationResult,
    RouteResult,
    StreamDelta,
)

__all__ = ["Backends", "ReadyCheck", "handle_backends"]

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
    # The small deployment re-reads the adapter registry and loads the serving versions now
    # (the admin API calls it after a change); returns what it serves. None: not supported.
    small_sync_adapters: Callable[[], Awaitable[dict[str, Any]]] | None = None


def handle_backends(router: Any, small: Any, large: Any) -> Backends:
    """The five calls of `Backends` (and the readiness check) as deployment-handle calls.

    The handles are Serve's `DeploymentHandle`s, untyped here because their methods are
    resolved at run time."""

    async def route(text: str) -> RouteResult:
        result: RouteResult = await router.route.remote(text)
        return result

    async def small_generate(request: GenerationRequest) -> GenerationResult:
        result: GenerationResult = await small.generate.remote(request)
        return result

    async def large_generate(request: GenerationRequest) -> GenerationResult:
        result: GenerationResult = await large.generate.remote(request)
        return result

    def small_stream(request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        return small.options(stream=True).stream.remote(request)  # type: ignore[no-any-return]

    def large_stream(request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        return large.options(stream=True).stream.remote(request)  # type: ignore[no-any-return]

    async def ready() -> dict[str, str]:
        router_info, _, _ = await asyncio.gather(
            router.info.remote(), small.check_health.remote(), large.check_health.remote()
        )
        return {"router_version": router_info["artifact_version"]}

    async def small_sync_adapters() -> dict[str, Any]:
        served: dict[str, Any] = await small.sync_adapters.remote(True)
        return served

    return Backends(
        route, small_generate, small_stream, large_generate, large_stream, ready,
        small_sync_adapters,
    )  # fmt: skip
