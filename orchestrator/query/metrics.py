"""Prometheus metrics of the query path and the ledger writer (prometheus_client).

The ingress calls `observe_query(row)` once per finished query with its ledger row,
`observe_ledger(ledger.stats)` whenever it likes (at the latest before rendering), and serves
`render_metrics()` at GET /metrics. Everything lives in a registry of its own, created on first
use (nothing happens at import), so tests and several apps in one process do not collide.

Labels stay bounded: `route` is the cascade route key (adapter, else router label, else
`base`), `model` the served name that answered (`none` for a failure before any model),
`tier` small or large. Each Serve replica keeps its own counters: scrape every replica.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from orchestrator.ledger import LedgerRow, LedgerStats

__all__ = ["SpillwayMetrics", "observe_ledger", "observe_query", "render_metrics"]

LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip
PROBABILITY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
STAGES = ("router", "small", "large", "total")
MetricT = TypeVar("MetricT", bound=MetricWrapperBase)
DIFFICULTY_SIGNAL = "difficulty"  # a pre-generation skip: scores the query, not an answer


def route_key(row: LedgerRow) -> str:
    return row.adapter or row.route or "base"


class _LedgerCollector(Collector):
    """Exposes the last `LedgerStats` seen: counters since start, and current gauges."""

    def __init__(self) -> None:
        self.stats: Any = None

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        if stats is None or not is_dataclass(stats):
            return
        for field in fields(stats):
            value = getattr(stats, field.name)
            name = f"spillway_ledger_{field.name}"
            if field.name.startswith(("rows_", "batches_", "write_")):
                yield CounterMetricFamily(
                    name, f"Ledger {field.name.replace('_', ' ')} since start.", value=value
                )
            else:
                yield GaugeMetricFamily(
                    name, f"Ledger {field.name.replace('_', ' ')} now.", value=float(value)
                )


class SpillwayMetrics:
    """All Spillway metrics in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "spillway_requests", "Finished queries.",
            ["tenant", "route", "adapter", "model", "status", "code"], registry=r,
        )  # fmt: skip
        self.escalations = Counter(
            "spillway_escalations", "Queries escalated to the large model, by reason.",
            ["tenant", "route", "reason"], registry=r,
        )  # fmt: skip
        self.degraded = Counter(
            "spillway_degraded", "Low-confidence small answers returned because the large "
            "model failed.", ["tenant", "route"], registry=r,
        )  # fmt: skip
        self.faults = Counter(
            "spillway_backend_faults", "Queries during which a deployment failed or timed out, "
            "by stage (router, small, large) and query status.", ["stage", "status"], registry=r,
        )  # fmt: skip
        self.cost = Counter(
            "spillway_cost_usd", "Money spent on model attempts (USD).",
            ["tenant", "route", "tier"], registry=r,
        )  # fmt: skip
        self.baseline = Counter(
            "spillway_baseline_cost_usd", "What the same queries would have cost on the large "
            "model alone (USD).", ["tenant", "route"], registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "spillway_tokens", "Tokens processed, by model tier.", ["tier", "kind"], registry=r
        )
        self.latency = Histogram(
            "spillway_stage_latency_seconds", "Time spent per stage of a query.",
            ["stage", "route"], buckets=LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.confidence = Histogram(
            "spillway_answer_confidence", "Small-model answer confidence (the cascade signal).",
            ["route"], buckets=PROBABILITY_BUCKETS, registry=r,
        )  # fmt: skip
        self.router_probability = Histogram(
            "spillway_router_probability", "The router's probability for its chosen label.",
            ["label"], buckets=PROBABILITY_BUCKETS, registry=r,
        )  # fmt: skip
        self._ledger = _LedgerCollector()
        r.register(self._ledger)
        # The labelled child of each (metric, label values) seen: `labels()` validates, locks
        # and looks up on every call, about a dozen times per query on the hot path. Label
        # values are bounded (module docstring), so this holds what the registry holds.
        self._children: dict[tuple[int, tuple[object, ...]], Any] = {}

    def _child(self, metric: MetricT, *values: object) -> MetricT:
        key = (id(metric), values)
        child: MetricT | None = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def observe_query(self, row: LedgerRow) -> None:
        route = route_key(row)
        self._child(
            self.requests, row.tenant, route, row.adapter or "", row.answered_by or "none",
            row.status, str(row.http_status),
        ).inc()  # fmt: skip
        if row.escalated:
            reason = row.escalation_reason or "unknown"
            self._child(self.escalations, row.tenant, route, reason).inc()
        if row.degraded:
            self._child(self.degraded, row.tenant, route).inc()
        for stage in row.faults.split(",") if row.faults else []:
            self._child(self.faults, stage, row.status).inc()
        self._child(self.cost, row.tenant, route, "small").inc(float(row.cost_small_usd))
        self._child(self.cost, row.tenant, route, "large").inc(float(row.cost_large_usd))
        self._child(self.baseline, row.tenant, route).inc(float(row.baseline_cost_usd))
        for tier in ("small", "large"):
            for kind in ("prompt", "completion"):
                self._child(self.tokens, tier, kind).inc(getattr(row, f"{tier}_{kind}_tokens"))
        for stage in STAGES:
            millis = getattr(row, f"latency_{stage}_ms")
            if millis is not None:
                self._child(self.latency, stage, route).observe(millis / 1000.0)
        if row.confidence is not None and row.confidence_signal != DIFFICULTY_SIGNAL:
            self._child(self.confidence, route).observe(row.confidence)
        if row.route is not None and row.route_probability is not None:
            self._child(self.router_probability, row.route).observe(row.route_probability)

    def observe_ledger(self, stats: LedgerStats) -> None:
        """Remember the ledger's `LedgerStats` (a snapshot; the latest one is exposed)."""
        self._ledger.stats = stats

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


_default: SpillwayMetrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> SpillwayMetrics:
    global _default
    with _default_lock:
        if _default is None:
            _default = SpillwayMetrics()
        return _default


def observe_query(row: LedgerRow) -> None:
    """Count one finished query (call once per ledger row, after `Ledger.record`)."""
    default_metrics().observe_query(row)


def observe_ledger(stats: LedgerStats) -> None:
    """Expose the ledger writer's counters (pass `ledger.stats`)."""
    default_metrics().observe_ledger(stats)


def render_metrics() -> tuple[bytes, str]:
    """(body, content type) of the Prometheus text exposition."""
    return default_metrics().render()
