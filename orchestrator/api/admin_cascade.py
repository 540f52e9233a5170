"""The cascade admin API (admin keys only): read and replace the cascade policy in force on
this ingress replica, without restarting anything.

`PUT /v1/admin/cascade` takes a `cascade` section as JSON (what the config's `cascade:` holds,
or the `policy` of a thresholds file from `spillway cascade calibrate`), validates it as the
config would, and puts it in force for the next queries; a bad one is a 400 naming the field
and the policy in force stays. `GET` returns the policy in force and where it came from.

The call reaches the one replica that answers it. With several ingress replicas (or
autoscaling), change the Ingress deployment's user_config key `cascade` instead
(`SpillwayIngress.reconfigure`): Serve applies it to every replica, new ones included.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from cascade.policy import CascadePolicy
from orchestrator.api.body import parse_model, read_body
from orchestrator.api.parts import ReplicaParts
from orchestrator.config import validate_cascade
from orchestrator.errors import Forbidden, from_validation_error
from orchestrator.query.live_policy import SOURCE_ADMIN_API

__all__ = ["CASCADE_PATH", "cascade_admin_router"]

CASCADE_PATH = "/v1/admin/cascade"


def cascade_admin_router(parts: ReplicaParts) -> APIRouter:
    router = APIRouter()
    live = parts.service.live_policy
    max_body = parts.config.limits.max_body_bytes

    def require_admin(request: Request) -> None:
        if not parts.authenticate(request).admin:
            raise Forbidden("Reading or changing the cascade policy needs an admin key.")

    @router.get(CASCADE_PATH)
    async def current(request: Request) -> dict[str, Any]:
        require_admin(request)
        return live.current.describe()

    @router.put(CASCADE_PATH)
    async def replace(request: Request) -> dict[str, Any]:
        require_admin(request)
        parsed = parse_model(CascadePolicy, await read_body(request, max_body))
        try:
            policy = validate_cascade(parsed, parts.config.router)  # the config's own checks
        except ValidationError as error:
            raise from_validation_error(error) from None
        return live.replace(policy, SOURCE_ADMIN_API).describe()

    return router
