"""`Backends`: how the query path reaches the router and the two models.

The query path (`orchestrator.query`) calls these five functions and nothing else of a backend,
so it runs the same over Serve deployment handles and over objects in the ingress replica's own
process: the router (`router.placement: ingress`) and remote model servers' HTTP clients
(`placement: ingress` of a remote model) run there, with no deployment hop. The builder picks
each part (`RouterCalls`, `ModelCalls`) and `compose_backends` joins them; tests pass in-process
objects. Each returns the same types in both cases.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.backends.types import (
    GenerationRequest,
    GenerationResult,
    RouteResult,
    StreamDelta,
)
from router_training.manifest import ArtifactError

if TYPE_CHECKING:  # the query path imports this module: it needs neither at run time
    from orchestrator.backends.remote import RemoteLLMDeployment
    from orchestrator.backends.router_local import LocalRouter

__all__ = [
    "Backends",
    "ModelCalls",
    "ReadyCheck",
    "RouterCalls",
    "RouterSwap",
    "compose_backends",
    "handle_backends",
    "model_handle_calls",
    "model_local_calls",
    "router_handle_calls",
    "router_local_calls",
]

ReadyCheck = Callable[[], Awaitable[dict[str, str]]]
"""Raises when a backend cannot answer; else facts for /readyz (the router's version)."""
RouterSwap = Callable[[str], Awaitable[dict[str, Any]]]
"""Loads the artifact at a path and routes with it from the next batch on; returns the router's
info. Raises ArtifactError with the current artifact still in use."""


@dataclass(frozen=True)
class Backends:
    """The router and the models, as async functions."""

    route: Callable[[str], Awaitable[RouteResult]]
    small_generate: Callable[[GenerationRequest], Awaitable[GenerationResult]]
    small_stream: Callable[[GenerationRequest], AsyncIterator[StreamDelta]]
    large_generate: Callable[[GenerationRequest], Awaitable[GenerationResult]]
    large_stream: Callable[[GenerationRequest], AsyncIterator[StreamDelta]]
    ready: ReadyCheck | None = None
    close: Callable[[], None] | None = None  # what the replica holds in process (clients)
    # The small deployment re-reads the adapter registry and loads the serving versions now
    # (the admin API calls it after a change); returns what it serves. None: not supported.
    small_sync_adapters: Callable[[], Awaitable[dict[str, Any]]] | None = None
    # The router's artifact in force (version, path, labels) and its replacement (the admin
    # API's /v1/admin/router). None: not supported by these backends.
    router_info: Callable[[], Awaitable[dict[str, Any]]] | None = None
    router_swap: RouterSwap | None = None


@dataclass(frozen=True)
class RouterCalls:
    """The router, wherever it runs: a deployment handle or an object in this process."""

    route: Callable[[str], Awaitable[RouteResult]]
    info: Callable[[], Awaitable[dict[str, Any]]]
    close: Callable[[], None] | None = None
    swap: RouterSwap | None = None


@dataclass(frozen=True)
class ModelCalls:
    """One model, wherever its client runs: a deployment handle or an object in this process."""

    generate: Callable[[GenerationRequest], Awaitable[GenerationResult]]
    stream: Callable[[GenerationRequest], AsyncIterator[StreamDelta]]
    check_health: Callable[[], Awaitable[None]]
    close: Callable[[], None] | None = None
    # A vLLM deployment re-reads the adapter registry and loads the serving versions now;
    # returns what it serves. None: the model has no run-time adapters here.
    sync_adapters: Callable[[], Awaitable[dict[str, Any]]] | None = None


def router_handle_calls(router: Any) -> RouterCalls:
    """The Router deployment's handle (Serve's `DeploymentHandle`, untyped: its methods are
    resolved at run time)."""

    async def route(text: str) -> RouteResult:
        result: RouteResult = await router.route.remote(text)
        return result

    async def info() -> dict[str, Any]:
        found: dict[str, Any] = await router.info.remote()
        return found

    async def swap(path: str) -> dict[str, Any]:
        """On the replica the handle picks (errors come back as values)."""
        answer: dict[str, Any] = await router.swap.remote(path)
        if "error" in answer:
            raise ArtifactError(answer["error"])
        return answer

    return RouterCalls(route, info, swap=swap)


def router_local_calls(router: LocalRouter) -> RouterCalls:
    """A router loaded in this process (`router.placement: ingress`)."""

    async def swap(path: str) -> dict[str, Any]:
        await router.swap(path, reload=True)
        return await router.info()

    return RouterCalls(router.route, router.info, router.close, swap)


def model_handle_calls(model: Any) -> ModelCalls:
    """A model deployment's handle (vLLM engine, or the remote client in its own replica)."""

    async def generate(request: GenerationRequest) -> GenerationResult:
        result: GenerationResult = await model.generate.remote(request)
        return result

    def stream(request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        return model.options(stream=True).stream.remote(request)  # type: ignore[no-any-return]

    async def check_health() -> None:
        await model.check_health.remote()

    async def sync_adapters() -> dict[str, Any]:
        served: dict[str, Any] = await model.sync_adapters.remote(True)
        return served

    return ModelCalls(generate, stream, check_health, sync_adapters=sync_adapters)


def model_local_calls(model: RemoteLLMDeployment) -> ModelCalls:
    """A remote OpenAI-compatible server called from this process (its HTTP client here)."""
    return ModelCalls(model.generate, model.stream, model.check_health, model.shutdown)


def compose_backends(router: RouterCalls, small: ModelCalls, large: ModelCalls) -> Backends:
    """The five calls of `Backends`, the readiness check and the closing of what runs here."""

    async def ready() -> dict[str, str]:
        router_info, _, _ = await asyncio.gather(
            router.info(), small.check_health(), large.check_health()
        )
        return {"router_version": router_info["artifact_version"]}

    def close() -> None:
        for part in (router, small, large):
            if part.close is not None:
                part.close()

    return Backends(
        router.route,
        small.generate,
        small.stream,
        large.generate,
        large.stream,
        ready,
        close,
        small.sync_adapters,
        router.info,
        router.swap,
    )


def handle_backends(router: Any, small: Any, large: Any) -> Backends:
    """Every backend through its deployment handle."""
    return compose_backends(
        router_handle_calls(router), model_handle_calls(small), model_handle_calls(large)
    )
