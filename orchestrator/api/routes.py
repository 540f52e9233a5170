"""The routes around the chat endpoint: health and readiness, Prometheus metrics, the models a
key may name, a query's ledger row, and feedback on an answer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from orchestrator.api.body import parse_model, read_body
from orchestrator.api.errors import error_response
from orchestrator.api.parts import ReplicaParts
from orchestrator.errors import InvalidRequest, NotFound, ServiceUnavailable
from orchestrator.ledger.export import jsonable_row
from orchestrator.query.metrics import observe_ledger, render_metrics
from orchestrator.query.request import FeedbackRequest

__all__ = ["model_cards", "service_router"]

READY_TIMEOUT_S = 10


def service_router(parts: ReplicaParts) -> APIRouter:
    """GET /metrics, /healthz, /readyz (no key) and the keyed /v1 routes but chat."""
    router = APIRouter()
    _probe_routes(router, parts)
    _query_routes(router, parts)
    return router


def _probe_routes(router: APIRouter, parts: ReplicaParts) -> None:
    @router.get("/metrics")
    async def metrics() -> Response:
        """Prometheus exposition (no key: scrapers run inside the cluster's network)."""
        observe_ledger(parts.ledger.stats)
        body, content_type = render_metrics()
        return Response(body, media_type=content_type)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> Response:
        """200 when the router and both models answer a health check within 10 s, else 503."""
        check = parts.service.backends.ready
        try:
            details = await asyncio.wait_for(check(), READY_TIMEOUT_S) if check else {}
        except Exception as exc:
            error = ServiceUnavailable(f"Not ready: {type(exc).__name__}: {exc}")
            return error_response(error)
        return JSONResponse({"status": "ready", **details})


def _query_routes(router: APIRouter, parts: ReplicaParts) -> None:
    @router.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        tenant = parts.authenticate(request)
        return {"object": "list", "data": model_cards(parts, tenant.name)}

    @router.get("/v1/queries/{query_id}")
    async def query_row(query_id: str, request: Request) -> dict[str, Any]:
        tenant = parts.authenticate(request)
        row = await asyncio.to_thread(parts.ledger.get, query_id)
        if row is None or (row["tenant"] != tenant.name and not tenant.admin):
            raise NotFound(f"No query with id '{query_id}'.", param="query_id")
        return jsonable_row(row)

    @router.post("/v1/feedback")
    async def feedback(request: Request) -> dict[str, Any]:
        """Store a judgement of an answer; the cascade's calibration learns from these."""
        tenant = parts.authenticate(request)
        body = await read_body(request, parts.config.limits.max_body_bytes)
        parsed = parse_model(FeedbackRequest, body)
        try:
            score = parsed.resolved_score()
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="score") from None
        row = await asyncio.to_thread(parts.ledger.get, parsed.query_id)
        if row is None or (row["tenant"] != tenant.name and not tenant.admin):
            raise NotFound(f"No query with id '{parsed.query_id}'.", param="query_id")
        feedback_id = await asyncio.to_thread(
            parts.ledger.add_feedback,
            parsed.query_id,
            score,
            correct=parsed.correct,
            comment=parsed.comment,
            route=parsed.route,
        )
        return {
            "id": feedback_id,
            "query_id": parsed.query_id,
            "score": score,
            "route": parsed.route,
        }


def model_cards(parts: ReplicaParts, tenant: str) -> list[dict[str, Any]]:
    """The models `tenant` may name: never another tenant's private adapters."""
    created = int(time.time())
    return [
        {
            "id": card.name,
            "object": "model",
            "created": created,
            "owned_by": "spillway",
            "spillway_role": card.role,
            "parent": card.parent,
        }
        for card in parts.service.catalog.models_of(tenant)
    ]
