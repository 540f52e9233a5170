"""A small ledger with known totals: ten queries over two UTC days, four feedback scores.

The dashboard's tests check its numbers against values computed by hand from this table, and
`seed(ledger, day)` fills any ledger with it for trying the page.

    id    day hh:mm tenant route/adapter  ver conf  outcome              cost   baseline
    q-a1  0 01:10 acme   math/math      v1 0.82  accepted             0.002  0.020
    q-a2  0 01:40 acme   math/math      v1 0.35  low_confidence       0.032  0.030
    q-a3  0 02:15 acme   code/code      v1 0.91  accepted             0.001  0.010
    q-a4  0 02:30 acme   code/- (abst.) v1 0.55  low_confidence       0.013  0.012
    q-b1  0 03:05 beta   math/math      v1 0.75  accepted             0.003  0.030
    q-b2  0 03:20 beta   -/- (large)    -  -     requested large      0.020  0.020
    q-b3  1 10:00 beta   math/math      v2 -     error 503            0      0
    q-b4  1 10:30 beta   math/math      v2 0.20d predicted_hard       0.025  0.025
    q-a5  1 11:45 acme   math/math      v2 0.58  low_confidence       0.030  0.028
    q-a6  1 12:10 acme   code/code      v2 0.66  accepted             0.001  0.011

Thresholds: math 0.6, code 0.6. Feedback: q-a1 1.0, q-a2 0.5, q-a5 1.0, q-a6 0.0.
"""

# ruff: noqa: E501  (a table reads best one row a line)
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from orchestrator.ledger import Ledger, LedgerRow

THRESHOLDS = {"math": 0.6, "code": 0.6}
FEEDBACK = {"q-a1": 1.0, "q-a2": 0.5, "q-a5": 1.0, "q-a6": 0.0}

# id, day, hh:mm, tenant, route, adapter, version, confidence, reason, small, large, baseline,
# latencies (router, small, large, total)
_ROWS: list[tuple[Any, ...]] = [
    ("q-a1", 0, "01:10", "acme", "math", "math", "v1", 0.82, None, "0.002", "0", "0.020", (5, 200, None, 210)),
    ("q-a2", 0, "01:40", "acme", "math", "math", "v1", 0.35, "low_confidence", "0.002", "0.030", "0.030", (4, 180, 900, 1090)),
    ("q-a3", 0, "02:15", "acme", "code", "code", "v1", 0.91, None, "0.001", "0", "0.010", (6, 120, None, 130)),
    ("q-a4", 0, "02:30", "acme", "code", None, "v1", 0.55, "low_confidence", "0.001", "0.012", "0.012", (5, 150, 700, 860)),
    ("q-b1", 0, "03:05", "beta", "math", "math", "v1", 0.75, None, "0.003", "0", "0.030", (7, 250, None, 260)),
    ("q-b2", 0, "03:20", "beta", None, None, None, None, None, "0", "0.020", "0.020", (None, None, 800, 805)),
    ("q-b3", 1, "10:00", "beta", "math", "math", "v2", None, "error", "0", "0", "0", (None, None, None, 50)),
    ("q-b4", 1, "10:30", "beta", "math", "math", "v2", 0.20, "predicted_hard", "0", "0.025", "0.025", (5, None, 1000, 1010)),
    ("q-a5", 1, "11:45", "acme", "math", "math", "v2", 0.58, "low_confidence", "0.002", "0.028", "0.028", (5, 210, 950, 1170)),
    ("q-a6", 1, "12:10", "acme", "code", "code", "v2", 0.66, None, "0.001", "0", "0.011", (4, 140, None, 150)),
]  # fmt: skip


def _signal(confidence: float | None, reason: str | None) -> str | None:
    if confidence is None:
        return None
    return "difficulty" if reason == "predicted_hard" else "mean_prob"


def _row(day: datetime, spec: tuple[Any, ...]) -> LedgerRow:
    qid, day_index, hhmm, tenant, route, adapter, version, conf, reason = spec[:9]
    small, large, baseline, latencies = Decimal(spec[9]), Decimal(spec[10]), spec[11], spec[12]
    hours, minutes = (int(part) for part in hhmm.split(":"))
    escalated = reason in ("low_confidence", "predicted_hard")
    direct_large = route is None
    return LedgerRow(
        query_id=qid,
        created_at=day + timedelta(days=day_index, hours=hours, minutes=minutes),
        tenant=tenant,
        status="error" if reason == "error" else "ok",
        http_status=503 if reason == "error" else 200,
        error_type="service_unavailable" if reason == "error" else None,
        model_requested="large-model" if direct_large else "auto",
        route=route,
        route_probability=None if direct_large else (0.3 if adapter is None else 0.9),
        router_version=version,
        adapter=adapter,
        answered_by=None if reason == "error" else ("large-model" if large else "small-model"),
        confidence=conf,
        confidence_signal=_signal(conf, reason),
        threshold=None if conf is None else 0.6,
        escalated=escalated,
        escalation_reason=reason if escalated else None,
        small_prompt_tokens=100 if small else 0,
        small_completion_tokens=50 if small else 0,
        large_prompt_tokens=100 if large else 0,
        large_completion_tokens=50 if large else 0,
        cost_small_usd=small,
        cost_large_usd=large,
        cost_usd=small + large,
        baseline_cost_usd=Decimal(baseline),
        latency_router_ms=latencies[0],
        latency_small_ms=latencies[1],
        latency_large_ms=latencies[2],
        latency_total_ms=latencies[3],
    )


def rows(day: datetime) -> list[LedgerRow]:
    """The ten rows, `day` being the first UTC midnight (timezone-aware)."""
    return [_row(day, spec) for spec in _ROWS]


def seed(ledger: Ledger, day: datetime) -> None:
    """Record the rows and their feedback in a started ledger, and wait until stored."""
    for row in rows(day):
        ledger.record(row)
    if not ledger.flush(30):
        raise RuntimeError("the sample rows could not be written to the ledger")
    for query_id, score in FEEDBACK.items():
        ledger.add_feedback(query_id, score)
