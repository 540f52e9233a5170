"""What the ingress needs besides the query path: authentication, body parsing, ledger rows.

Kept apart from the FastAPI routes so each piece is small and testable without Ray.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from orchestrator.config import SpillwayConfig, TenantSettings
from orchestrator.dashboard.source import StatsSource
from orchestrator.dashboard.stats_tenants import spend_reader
from orchestrator.errors import (
    InvalidRequest,
    PayloadTooLarge,
    SpillwayError,
    Unauthorized,
    from_validation_error,
)
from orchestrator.ledger import Ledger, LedgerRow
from orchestrator.metrics import observe_query
from orchestrator.protocol import ChatCompletionRequest
from orchestrator.quota import Admission
from orchestrator.service import QueryService, QueryTrace

log = logging.getLogger("spillway.gateway")
ModelT = TypeVar("ModelT", bound=BaseModel)


class Gateway:
    """Per-replica state of the ingress: the query service, the key table and the ledger."""

    def __init__(self, config: SpillwayConfig, service: QueryService, ledger: Ledger):
        self.config = config
        self.service = service
        self.ledger = ledger
        self._tenants = config.tenant_by_key_digest()
        self.usage_source = StatsSource(config.ledger.resolved_url())
        self.admission = Admission(config.tenants, spend_reader(self.usage_source))

    # ----- authentication -----------------------------------------------------------------------
    def authenticate(self, request: Request) -> TenantSettings:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized(
                "Missing API key: send it as 'Authorization: Bearer <key>'.",
                code="missing_api_key",
            )
        tenant = self._tenants.get(hashlib.sha256(key.strip().encode()).hexdigest())
        if tenant is None:
            raise Unauthorized("Incorrect API key provided.")
        return tenant

    async def admit(self, tenant: TenantSettings) -> None:
        """429 when the tenant is over its monthly budget or request rate (quota.py)."""
        await self.admission.admit(tenant)

    # ----- request body -------------------------------------------------------------------------
    async def read_chat_request(self, request: Request) -> ChatCompletionRequest:
        raw = await read_body(request, self.config.limits.max_body_bytes)
        return parse_chat_request(raw)

    # ----- ledger -------------------------------------------------------------------------------
    def record(self, trace: QueryTrace, *, status: int, error: SpillwayError | None = None) -> None:
        """Write the query's one ledger row and count it in the metrics.

        Never raises into the request path."""
        row = ledger_row(trace, status=status, error=error)
        self.ledger.record(row)
        self.admission.charge(row.tenant, row.cost_usd)
        try:
            observe_query(row)
        except Exception:  # metrics must never fail a query
            log.exception("could not update metrics for %s", trace.query_id)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is over the limit of {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is over the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_chat_request(raw: bytes) -> ChatCompletionRequest:
    """Decode and validate a chat completion body; every failure is a 400 naming the field."""
    return parse_model(ChatCompletionRequest, raw)


def parse_model(model: type[ModelT], raw: bytes) -> ModelT:
    """Decode a JSON object body and validate it as `model`; failures are 400s."""
    if not raw.strip():
        raise InvalidRequest("The request body is empty; send a JSON object.", code="empty_body")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"The request body is not valid UTF-8 (byte {exc.start}).", code="invalid_utf8"
        ) from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, a 5,000-digit number…
        raise InvalidRequest(
            f"The request body is not valid JSON{_json_problem(exc)}.", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _json_problem(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f" at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, RecursionError):
        return " (nested too deeply)"
    return f" ({str(exc).split(';')[0]})"


def ledger_row(trace: QueryTrace, *, status: int, error: SpillwayError | None) -> LedgerRow:
    small, large, cost = trace.small_usage, trace.large_usage, trace.cost
    decision = trace.decision
    zero = Decimal(0)
    return LedgerRow(
        query_id=trace.query_id,
        created_at=datetime.now(UTC),
        tenant=trace.tenant,
        status="ok" if error is None else "error",
        http_status=status,
        error_type=error.code if error else None,
        error_message=error.message if error else None,
        model_requested=trace.model_requested,
        stream=trace.stream,
        route=trace.route,
        route_probability=trace.route_probability,
        router_version=trace.router_version,
        adapter=trace.adapter,
        answered_by=trace.answered_by or None,
        confidence=decision.confidence if decision else None,
        confidence_signal=decision.signal if decision else None,
        threshold=decision.threshold if decision else None,
        escalated=trace.escalated,
        escalation_reason=trace.reason if trace.escalated else None,
        small_prompt_tokens=small.prompt_tokens if small else 0,
        small_completion_tokens=small.completion_tokens if small else 0,
        large_prompt_tokens=large.prompt_tokens if large else 0,
        large_completion_tokens=large.completion_tokens if large else 0,
        cost_small_usd=cost.small if cost else zero,
        cost_large_usd=cost.large if cost else zero,
        cost_usd=cost.total if cost else zero,
        baseline_cost_usd=cost.baseline if cost else zero,
        latency_router_ms=trace.latency_ms.get("router"),
        latency_small_ms=trace.latency_ms.get("small"),
        latency_large_ms=trace.latency_ms.get("large"),
        latency_total_ms=trace.latency_ms.get("total"),
        degraded=trace.degraded,
        faults=",".join(trace.faults) or None,
    )
