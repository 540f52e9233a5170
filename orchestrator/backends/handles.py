"""`Backends` over Ray Serve deployment handles (the router, the small and the large model)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from orchestrator.backends.seam import Backends
from orchestrator.backends.types import (
    GenerationRequest,
    GenerationResult,
    RouteResult,
    StreamDelta,
)

__all__ = ["handle_backends"]


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

    return Backends(route, small_generate, small_stream, large_generate, large_stream, ready)
