"""`QueryTrace`: everything learned while answering one query, and its two mappings, defined
here once: to the response's `spillway` object and headers (`info`), and to the query's ledger
row (`ledger_row`). A new field of the trace is added to both here. `QueryRecorder` ends every
query's path, answered or refused: the row, the tenant's charge, the Prometheus counts."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from cascade.policy import Decision
from cascade.pricing import Price, QueryCost, Usage, query_cost
from orchestrator.errors import SpillwayError
from orchestrator.ledger import Ledger, LedgerRow
from orchestrator.query.admission import Admission
from orchestrator.query.metrics import observe_query

__all__ = ["QueryRecorder", "QueryTrace", "SpillwayInfo", "ms_since", "new_query_id"]

log = logging.getLogger("spillway.recorder")


class SpillwayInfo(BaseModel):
    """Which model answered and why; added to every response as `spillway`."""

    query_id: str
    route: str | None
    route_probability: float | None
    router_version: str | None = None
    adapter: str | None
    adapter_version: str | None = None  # name@N of the adapter that ran
    answered_by: str
    confidence: float | None
    confidence_signal: str | None = None
    threshold: float | None = None
    escalated: bool
    reason: str
    cost_usd: str
    baseline_cost_usd: str
    degraded: bool = False  # the small answer, returned because the large model failed
    faults: list[str] = []  # deployments that failed for this query: router, small, large
    # Every confidence signal of the small answer (cascade.confidence_features), for evaluation;
    # the ledger keeps the deciding one (confidence, confidence_signal).
    signals: dict[str, float] | None = None

    def headers(self) -> dict[str, str]:
        """The same facts as `x-spillway-*` response headers."""
        values: dict[str, Any] = {
            "query-id": self.query_id,
            "route": self.route or "",
            "route-probability": _fmt(self.route_probability),
            "adapter": self.adapter or "",
            "adapter-version": self.adapter_version or "",
            "answered-by": self.answered_by,
            "confidence": _fmt(self.confidence),
            "escalated": str(self.escalated).lower(),
            "reason": self.reason,
            "cost-usd": self.cost_usd,
            "degraded": str(self.degraded).lower(),
            "faults": ",".join(self.faults),
        }
        return {f"x-spillway-{key}": str(value) for key, value in values.items()}


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def ms_since(started: float) -> float:
    """Milliseconds since `started` (a `time.perf_counter()` reading)."""
    return (time.perf_counter() - started) * 1000.0


def new_query_id() -> str:
    return "q-" + uuid.uuid4().hex


@dataclass
class QueryTrace:
    """Everything learned while answering one query; becomes the response and the ledger row."""

    query_id: str
    tenant: str
    model_requested: str
    stream: bool
    started: float = field(default_factory=time.perf_counter)
    route: str | None = None
    route_probability: float | None = None
    router_version: str | None = None
    adapter: str | None = None
    # The difficulty scorer's P(small is enough): the skip decision's input, recorded through
    # `decision` (signal `difficulty`) when it skips the small model.
    small_enough_probability: float | None = None
    adapter_version: str | None = None  # the adapter's registry version, name@N
    decision: Decision | None = None
    signals: dict[str, float] | None = None  # the small answer's signals (response only)
    escalated: bool = False
    reason: str = ""
    answered_by: str = ""
    small_usage: Usage | None = None
    large_usage: Usage | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    cost: QueryCost | None = None
    degraded: bool = False  # a low-confidence small answer returned because large failed
    faults: list[str] = field(default_factory=list)  # stages that failed: router/small/large
    query_text: str | None = None  # the routed text, for tenants with keep_query_text only

    def settle(self, small_price: Price, large_price: Price) -> None:
        """Bill every attempt that ran (the wasted small one included) and stop the clock."""
        self.cost = query_cost(self.small_usage, small_price, self.large_usage, large_price)
        self.latency_ms["total"] = ms_since(self.started)

    def info(self) -> SpillwayInfo:
        """The response's `spillway` object (and, through it, the `x-spillway-*` headers)."""
        cost = self.cost
        return SpillwayInfo(
            **self._decision_fields(),
            answered_by=self.answered_by,
            reason=self.reason,
            cost_usd=str(cost.total) if cost else "0",
            baseline_cost_usd=str(cost.baseline) if cost else "0",
            faults=list(self.faults),
            signals=self.signals,
        )

    def ledger_row(self, *, status: int, error: SpillwayError | None = None) -> LedgerRow:
        """The query's one ledger row, answered (`error` None) or failed."""
        return LedgerRow(
            **self._decision_fields(),
            created_at=datetime.now(UTC),
            tenant=self.tenant,
            status="ok" if error is None else "error",
            http_status=status,
            error_type=error.code if error else None,
            error_message=error.message if error else None,
            model_requested=self.model_requested,
            stream=self.stream,
            answered_by=self.answered_by or None,
            escalation_reason=self.reason if self.escalated else None,
            **self._usage_columns(),
            **self._cost_columns(),
            latency_router_ms=self.latency_ms.get("router"),
            latency_small_ms=self.latency_ms.get("small"),
            latency_large_ms=self.latency_ms.get("large"),
            latency_total_ms=self.latency_ms.get("total"),
            faults=",".join(self.faults) or None,
            query_text=self.query_text,
            signals=self.signals,
        )

    def _decision_fields(self) -> dict[str, Any]:
        """What the response and the ledger row both say, under the same names: the route,
        the cascade's decision and whether the answer is degraded."""
        decision = self.decision
        return {
            "query_id": self.query_id,
            "route": self.route,
            "route_probability": self.route_probability,
            "router_version": self.router_version,
            "adapter": self.adapter,
            "adapter_version": self.adapter_version,
            "confidence": decision.confidence if decision else None,
            "confidence_signal": decision.signal if decision else None,
            "threshold": decision.threshold if decision else None,
            "escalated": self.escalated,
            "degraded": self.degraded,
        }

    def _usage_columns(self) -> dict[str, int]:
        small, large = self.small_usage, self.large_usage
        return {
            "small_prompt_tokens": small.prompt_tokens if small else 0,
            "small_completion_tokens": small.completion_tokens if small else 0,
            "large_prompt_tokens": large.prompt_tokens if large else 0,
            "large_completion_tokens": large.completion_tokens if large else 0,
        }

    def _cost_columns(self) -> dict[str, Decimal]:
        cost, zero = self.cost, Decimal(0)
        return {
            "cost_small_usd": cost.small if cost else zero,
            "cost_large_usd": cost.large if cost else zero,
            "cost_usd": cost.total if cost else zero,
            "baseline_cost_usd": cost.baseline if cost else zero,
        }


class QueryRecorder:
    """Writes each query's one ledger row (through `QueryTrace.ledger_row`).

    `record` and `record_failure` are awaited before the response (or a stream's last chunk)
    leaves: they return once the row is durable on this host (the ledger's journal, when it
    has one), so no answer reaches a client without its row. `record_nowait` is for the one
    path that can no longer answer anyone: a stream whose client has gone."""

    def __init__(
        self, ledger: Ledger, admission: Admission, settle: Callable[[QueryTrace], None]
    ) -> None:
        self._ledger = ledger
        self._admission = admission
        self._settle = settle  # QueryService.settle: the service knows the prices

    async def record(
        self, trace: QueryTrace, *, status: int, error: SpillwayError | None = None
    ) -> None:
        """Record the row (see `record_nowait`) and wait until it is durable."""
        await asyncio.wrap_future(self.record_nowait(trace, status=status, error=error))

    async def record_failure(self, trace: QueryTrace, error: SpillwayError) -> None:
        """The row of a query that failed or was refused, durable before the error leaves."""
        await asyncio.wrap_future(self.record_failure_nowait(trace, error))

    def record_nowait(
        self, trace: QueryTrace, *, status: int, error: SpillwayError | None = None
    ) -> Future[None]:
        """Queue the row, charge the tenant, count the query; the future completes when the
        row is durable. Never raises into the request path for metrics (the ledger's own
        queue never blocks; see ledger/writer.py)."""
        row = trace.ledger_row(status=status, error=error)
        durable = self._ledger.record(row)
        self._admission.charge(row.tenant, row.cost_usd)
        try:
            observe_query(row)
        except Exception:  # metrics must never fail a query
            log.exception("could not update metrics for %s", trace.query_id)
        return durable

    def record_failure_nowait(self, trace: QueryTrace, error: SpillwayError) -> Future[None]:
        """`record_failure` without waiting; attempts that ran are still billed."""
        if trace.cost is None and (trace.small_usage or trace.large_usage):
            self._settle(trace)
        trace.latency_ms.setdefault("total", ms_since(trace.started))
        return self.record_nowait(trace, status=error.status, error=error)
