"""Per adapter version (`legal@3`): traffic, confidence, escalation rate and feedback quality,
so a user can see whether a new version earns its place before (and after) promoting it.

Read from the ledger rows themselves (the rollups have no version key): one pass over the
scope's time range through the `created_at` index, grouped by adapter and version; feedback
scores are averaged per query first, so a query judged twice counts once.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from orchestrator.dashboard.scope import Scope
from orchestrator.dashboard.stats_queries import ledger_filters
from orchestrator.ledger.schema import feedback_table as FEEDBACK
from orchestrator.ledger.schema import ledger_table as LEDGER

__all__ = ["adapter_versions"]


def adapter_versions(connection: sa.Connection, scope: Scope) -> dict[str, Any]:
    """`{"range", "versions": [{adapter, version, queries, mean_confidence, escalation_rate,
    errors, feedback_count, mean_feedback}]}`, by adapter then version."""
    judged = (
        sa.select(FEEDBACK.c.query_id, sa.func.avg(FEEDBACK.c.score).label("score"))
        .group_by(FEEDBACK.c.query_id)
        .subquery()
    )
    escalated = sa.case((LEDGER.c.escalated == sa.true(), 1), else_=0)
    failed = sa.case((LEDGER.c.status == "error", 1), else_=0)
    query = (
        sa.select(
            LEDGER.c.adapter,
            LEDGER.c.adapter_version,
            sa.func.count().label("queries"),
            sa.func.avg(LEDGER.c.confidence).label("mean_confidence"),
            sa.func.avg(escalated).label("escalation_rate"),
            sa.func.sum(failed).label("errors"),
            sa.func.count(judged.c.score).label("feedback_count"),
            sa.func.avg(judged.c.score).label("mean_feedback"),
        )
        .select_from(LEDGER.outerjoin(judged, judged.c.query_id == LEDGER.c.query_id))
        .where(LEDGER.c.adapter_version.is_not(None), *ledger_filters(scope))
        .group_by(LEDGER.c.adapter, LEDGER.c.adapter_version)
        .order_by(LEDGER.c.adapter, LEDGER.c.adapter_version)
    )
    versions = [_present(row) for row in connection.execute(query).mappings()]
    return {"range": scope.describe(), "versions": versions}


def _present(row: Any) -> dict[str, Any]:
    def number(value: Any) -> float | None:
        return None if value is None else round(float(value), 4)

    return {
        "adapter": row["adapter"],
        "version": row["adapter_version"],
        "queries": int(row["queries"]),
        "mean_confidence": number(row["mean_confidence"]),
        "escalation_rate": number(row["escalation_rate"]),
        "errors": int(row["errors"] or 0),
        "feedback_count": int(row["feedback_count"]),
        "mean_feedback": number(row["mean_feedback"]),
    }
