"""The two query lists: the most expensive queries and the latest escalations.

Neither scans the ledger: the most expensive come from `dash_top` (the top K per UTC day and
group, so the list is exact for whole days and up to K rows), then their rows are read by
primary key; the latest escalations are found hour by hour, newest first, only in the hours
the hourly rollup says hold matching escalations, each an index range of one hour.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from orchestrator.dashboard.scope import BASE_ROUTE, HOUR, Scope, iso
from orchestrator.dashboard.stats_hourly import money
from orchestrator.ledger.rollup import hourly_table as H
from orchestrator.ledger.rollup import top_table as T
from orchestrator.ledger.schema import ledger_table as LEDGER

LIST_COLUMNS = (
    "query_id", "created_at", "tenant", "status", "route", "adapter", "answered_by",
    "confidence", "threshold", "escalated", "escalation_reason", "cost_usd",
    "baseline_cost_usd", "latency_total_ms", "degraded", "faults",
)  # fmt: skip


def ledger_route_key() -> sa.ColumnElement[str]:
    """The cascade route key of a ledger row (its columns are NULL for none)."""
    return sa.func.coalesce(
        sa.func.nullif(LEDGER.c.adapter, ""),
        sa.func.nullif(LEDGER.c.route, ""),
        sa.literal(BASE_ROUTE),
    )


def _present(row: Any) -> dict[str, Any]:
    item = {name: row[name] for name in LIST_COLUMNS}
    item["created_at"] = iso(item["created_at"])
    for name in ("cost_usd", "baseline_cost_usd"):
        item[name] = money(item[name])
    item["escalated"] = bool(item["escalated"])
    item["degraded"] = bool(item["degraded"])
    item["url"] = f"/v1/queries/{item['query_id']}"
    return item


def _columns() -> list[sa.Column[Any]]:
    return [LEDGER.c[name] for name in LIST_COLUMNS]


def expensive(connection: sa.Connection, scope: Scope, limit: int) -> dict[str, Any]:
    scope = scope.snapped("day")
    top = (
        sa.select(T.c.query_id)
        .where(*scope.between(T.c.bucket), *scope.filters(T))
        .order_by(T.c.cost_usd.desc(), T.c.query_id)
        .limit(limit)
    )
    ids = [query_id for (query_id,) in connection.execute(top)]
    rows = connection.execute(sa.select(*_columns()).where(LEDGER.c.query_id.in_(ids))).mappings()
    by_id = {row["query_id"]: _present(row) for row in rows}
    return {"range": scope.describe(), "queries": [by_id[i] for i in ids if i in by_id]}


def latest_escalations(connection: sa.Connection, scope: Scope, limit: int) -> dict[str, Any]:
    scope = scope.snapped("hour")
    hours_query = (
        sa.select(H.c.bucket)
        .where(*scope.between(H.c.bucket), *scope.filters(H), H.c.escalated)
        .group_by(H.c.bucket)
        .order_by(H.c.bucket.desc())
        .limit(limit)  # each of these hours holds at least one matching escalation
    )
    found: list[dict[str, Any]] = []
    for (hour,) in list(connection.execute(hours_query)):
        query = (
            sa.select(*_columns())
            .where(
                LEDGER.c.created_at >= hour,
                LEDGER.c.created_at < hour + HOUR,
                LEDGER.c.escalated == sa.true(),
                *ledger_filters(scope),
            )
            .order_by(LEDGER.c.created_at.desc(), LEDGER.c.query_id.desc())
            .limit(limit - len(found))
        )
        found += [_present(row) for row in connection.execute(query).mappings()]
        if len(found) >= limit:
            break
    return {"range": scope.describe(), "queries": found}


def ledger_filters(scope: Scope) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if scope.tenant is not None:
        conditions.append(LEDGER.c.tenant == scope.tenant)
    if scope.route is not None:
        conditions.append(ledger_route_key() == scope.route)
    if scope.since is not None:
        conditions.append(LEDGER.c.created_at >= scope.since)
    if scope.until is not None:
        conditions.append(LEDGER.c.created_at < scope.until)
    return conditions
