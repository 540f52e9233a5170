"""The router admin API (admin keys only): read and replace the router artifact in service,
without restarting anything.

`PUT /v1/admin/router` takes `{"artifact_path": DIR}` (a directory on the machine the router
runs on, e.g. what `spillway router train --from-ledger` wrote). The artifact is checked first
(its labels must cover every label the config maps to an adapter; it must load: manifest, file
hashes, a probe prediction), then swapped in: queries already being routed finish on the old
one, the next batch uses the new one. A bad artifact is a 400 naming `artifact_path`, and the
old one keeps serving. `GET` returns the artifact in force (version, path, labels).

Which router the call reaches: with `router.placement: ingress` (the default) the router of the
ingress replica that answers; with `placement: deployment` one replica of the Router
deployment. With several replicas (or autoscaling), put the path in the deployment's
user_config instead (the Ingress's `router_artifact_path`, the Router's `artifact_path`):
Serve applies it to every replica, new ones included.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api.body import parse_model, read_body
from orchestrator.api.parts import ReplicaParts
from orchestrator.backends.router_swap import check_artifact_labels
from orchestrator.errors import Forbidden, InvalidRequest, NotFound
from router_training.manifest import ArtifactError

__all__ = ["ROUTER_PATH", "RouterArtifactBody", "router_admin_router"]

ROUTER_PATH = "/v1/admin/router"


class RouterArtifactBody(BaseModel):
    """The body of `PUT /v1/admin/router`."""

    model_config = ConfigDict(extra="forbid")

    artifact_path: str = Field(
        min_length=1,
        description="Router artifact directory on the router's machine (absolute, or relative "
        "to the service's working directory).",
    )


def router_admin_router(parts: ReplicaParts) -> APIRouter:
    router = APIRouter()
    backends = parts.service.backends
    max_body = parts.config.limits.max_body_bytes
    placement = parts.config.router.placement

    def require_admin(request: Request) -> None:
        if not parts.authenticate(request).admin:
            raise Forbidden("Reading or replacing the router artifact needs an admin key.")

    def described(info: dict[str, Any]) -> dict[str, Any]:
        return {"object": "router.artifact", **info, "placement": placement, "scope": "replica"}

    @router.get(ROUTER_PATH)
    async def current(request: Request) -> dict[str, Any]:
        require_admin(request)
        if backends.router_info is None:
            raise NotFound("This service's router does not report its artifact.")
        return described(await backends.router_info())

    @router.put(ROUTER_PATH)
    async def replace(request: Request) -> dict[str, Any]:
        require_admin(request)
        body = parse_model(RouterArtifactBody, await read_body(request, max_body))
        if backends.router_swap is None:
            raise NotFound("This service's router cannot be replaced while it runs.")
        try:
            await asyncio.to_thread(check_artifact_labels, parts.config, body.artifact_path)
            info = await backends.router_swap(body.artifact_path)
        except ArtifactError as error:
            raise InvalidRequest(
                f"artifact_path: {error}", param="artifact_path", code="invalid_artifact"
            ) from None
        return described(info)

    return router
