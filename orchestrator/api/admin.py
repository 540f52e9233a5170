"""The adapter admin API (admin keys only): list, add, promote, roll back and remove versions of
the small model's LoRA adapters while the service runs.

Each change is written to the adapter registry (`orchestrator.config.adapter_registry`), then
the small-model deployment is asked to load what it now serves, so the call returns when the
new version can answer. Nothing else restarts: the router, the large model and the ingress
keep their replicas; other small-model replicas and ingress replicas see the change on their
next request (they stat the registry file).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api.body import parse_model, read_body
from orchestrator.api.parts import ReplicaParts
from orchestrator.config.adapter_registry import (
    AdapterRegistry,
    RegistryError,
    RegistryFile,
    adapter_registry_of,
    add_adapter,
)
from orchestrator.errors import Forbidden, InvalidRequest, NotFound

__all__ = ["admin_router"]

PREFIX = "/v1/admin/adapters"


class AddAdapter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Adapter name; an existing name gets a new version.")
    path: str = Field(description="PEFT adapter directory on the service's machine.")
    tenant: str | None = Field(None, description="Owner tenant (private); None: shared.")
    promote: bool = Field(False, description="Serve the new version at once.")


class Promote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="The version N of name@N to serve.")


class Canary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="The version N of name@N to try.")
    share: float = Field(ge=0, le=1, description="Share of the name's requests; 0 stops it.")


def admin_router(parts: ReplicaParts) -> APIRouter:
    router = APIRouter()
    admin = _Admin(parts)

    @router.get(PREFIX)
    async def list_adapters(request: Request) -> dict[str, Any]:
        loaded = await asyncio.to_thread(admin.registry(request).load)
        return {"object": "list", "data": loaded.listing()}

    @router.post(PREFIX)
    async def add(request: Request) -> dict[str, Any]:
        return await admin.add(request)

    @router.post(PREFIX + "/{name}/promote")
    async def promote(name: str, request: Request) -> dict[str, Any]:
        registry = admin.registry(request)
        body = parse_model(Promote, await read_body(request, admin.max_body))
        return await admin.apply(registry, lambda r: r.promote(name, body.version))

    @router.post(PREFIX + "/{name}/canary")
    async def canary(name: str, request: Request) -> dict[str, Any]:
        registry = admin.registry(request)
        body = parse_model(Canary, await read_body(request, admin.max_body))
        return await admin.apply(registry, lambda r: r.set_canary(name, body.version, body.share))

    @router.post(PREFIX + "/{name}/rollback")
    async def rollback(name: str, request: Request) -> dict[str, Any]:
        registry = admin.registry(request)
        return await admin.apply(registry, lambda r: f"{name}@{r.rollback(name)}")

    @router.delete(PREFIX + "/{model}")
    async def remove(model: str, request: Request) -> dict[str, Any]:
        registry = admin.registry(request)
        return await admin.apply(registry, lambda r: r.remove(model))

    return router


class _Admin:
    """The admin API's checks and changes, over one replica's parts."""

    def __init__(self, parts: ReplicaParts) -> None:
        self.parts = parts
        self.max_body = parts.config.limits.max_body_bytes
        self._registry = adapter_registry_of(parts.config)

    def registry(self, request: Request) -> RegistryFile:
        """The registry, for an admin key only."""
        tenant = self.parts.authenticate(request)
        if not tenant.admin:
            raise Forbidden("Managing adapters needs an admin key.")
        if self._registry is None:
            raise InvalidRequest(
                "The small model is a remote server here; manage its adapters there.",
                param="model",
            )
        return self._registry

    async def add(self, request: Request) -> dict[str, Any]:
        registry = self.registry(request)
        body = parse_model(AddAdapter, await read_body(request, self.max_body))
        config = self.parts.config
        if body.tenant is not None and body.tenant not in {t.name for t in config.tenants}:
            raise InvalidRequest(f"No tenant named '{body.tenant}'.", param="tenant")
        assert config.small.engine is not None
        added = await _registry_call(
            add_adapter, registry, body.name, body.path, owner=body.tenant,
            promote=body.promote, max_rank=config.small.engine.max_lora_rank,
        )  # fmt: skip
        return {"added": added, **await _sync(self.parts)}

    async def apply(
        self, registry: RegistryFile, change: Callable[[AdapterRegistry], Any]
    ) -> dict[str, Any]:
        """Change the registry, then have the small deployment load what it now serves."""

        def write() -> Any:
            with registry.change() as current:
                return change(current)

        result = await _registry_call(write)
        return {"result": result, **await _sync(self.parts)}


async def _registry_call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a registry change off the event loop; its refusals become 400/404 errors."""
    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    except RegistryError as error:
        message = str(error)
        if message.startswith("no adapter named") or "has no version" in message:
            raise NotFound(message, param="name") from None
        raise InvalidRequest(message, param="name") from None


async def _sync(parts: ReplicaParts) -> dict[str, Any]:
    """Ask the small deployment to load the serving versions; what it serves and how long."""
    sync = parts.service.backends.small_sync_adapters
    if sync is None:
        return {"serving": None, "load_seconds": None}
    started = time.perf_counter()
    described = await sync()
    return {
        "serving": described.get("serving"),
        "load_seconds": round(time.perf_counter() - started, 3),
    }
