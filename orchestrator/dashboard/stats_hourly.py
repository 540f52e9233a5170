"""Stats from the counts rollups (hourly and daily): totals, cost and escalations over time,
router mix, and the filter options."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from orchestrator.dashboard.levels import rollup_rows
from orchestrator.dashboard.scope import HOUR, Scope, floor_unit, iso, route_key
from orchestrator.ledger.rollup import COUNTS_TABLES, hourly_table

AUTO_STEP_MAX_SPAN = timedelta(days=3)
TOKEN_SUMS = ("small_prompt", "small_completion", "large_prompt", "large_completion")
COUNT_COLUMNS = (
    "route", "adapter", "router_version", "status", "escalated", "reason", "queries",
    "cost_usd", "baseline_cost_usd", "cost_small_usd", "cost_large_usd",
    *(f"{name}_tokens" for name in TOKEN_SUMS),
)  # fmt: skip


def money(value: Decimal | float | None) -> float:
    return round(float(value or 0), 10)


def ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def counts(scope: Scope, *, hourly_only: bool = False) -> Any:
    """The counts rollup rows of the scope (snapped to hours), hourly and daily pieces."""
    levels = COUNTS_TABLES[:1] if hourly_only else COUNTS_TABLES
    return rollup_rows(levels, scope, COUNT_COLUMNS)


def escalated_count(r: Any) -> sa.ColumnElement[Any]:
    return sa.func.sum(sa.case((r.c.escalated, r.c.queries), else_=0))


def summary(connection: sa.Connection, scope: Scope) -> dict[str, Any]:
    scope = scope.snapped("hour")
    r = counts(scope)
    query = sa.select(
        sa.func.sum(r.c.queries).label("queries"),
        sa.func.sum(sa.case((r.c.status != "ok", r.c.queries), else_=0)).label("errors"),
        escalated_count(r).label("escalated"),
        *(
            sa.func.sum(r.c[n]).label(n)
            for n in ("cost_usd", "baseline_cost_usd", "cost_small_usd", "cost_large_usd")
        ),
        *(sa.func.sum(r.c[f"{name}_tokens"]).label(name) for name in TOKEN_SUMS),
    )
    row = connection.execute(query).mappings().one()
    queries, escalated = int(row["queries"] or 0), int(row["escalated"] or 0)
    cost, baseline = money(row["cost_usd"]), money(row["baseline_cost_usd"])
    return {
        "range": scope.describe(),
        "queries": queries,
        "errors": int(row["errors"] or 0),
        "escalated": escalated,
        "escalation_rate": ratio(escalated, queries),
        "cost_usd": cost,
        "baseline_cost_usd": baseline,
        "savings_usd": round(baseline - cost, 10),
        "savings_rate": ratio(baseline - cost, baseline),
        "cost_small_usd": money(row["cost_small_usd"]),
        "cost_large_usd": money(row["cost_large_usd"]),
        "tokens": {
            model: {kind: int(row[f"{model}_{kind}"] or 0) for kind in ("prompt", "completion")}
            for model in ("small", "large")
        },
    }


def choose_step(scope: Scope, step: str) -> str:
    if step in ("hour", "day"):
        return step
    if scope.since is not None and scope.until is not None:
        return "hour" if scope.until - scope.since <= AUTO_STEP_MAX_SPAN else "day"
    return "day"


def _series(
    connection: sa.Connection, scope: Scope, step: str, sums: dict[str, Any]
) -> dict[datetime, dict[str, float]]:
    """{step start: {name: sum}} in time order; `sums` maps names to SQL over the rows."""
    r = counts(scope, hourly_only=step == "hour")
    query = sa.select(r.c.bucket, *(expr(r).label(name) for name, expr in sums.items()))
    buckets: dict[datetime, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in connection.execute(query.group_by(r.c.bucket)):
        bucket = buckets[floor_unit(row.bucket, step)]
        for name in sums:
            bucket[name] += float(row._mapping[name] or 0)
    return dict(sorted(buckets.items()))


def cost_series(connection: sa.Connection, scope: Scope, step: str) -> dict[str, Any]:
    scope = scope.snapped("hour")
    size = choose_step(scope, step)
    sums = {
        "queries": lambda r: sa.func.sum(r.c.queries),
        "cost": lambda r: sa.func.sum(r.c.cost_usd),
        "baseline": lambda r: sa.func.sum(r.c.baseline_cost_usd),
    }
    points = []
    for start, s in _series(connection, scope, size, sums).items():
        cost, baseline = round(s["cost"], 10), round(s["baseline"], 10)
        points.append(
            {
                "t": iso(start),
                "queries": int(s["queries"]),
                "cost_usd": cost,
                "baseline_cost_usd": baseline,
                "savings_usd": round(baseline - cost, 10),
            }
        )
    return {"range": scope.describe(), "step": size, "points": points}


def escalation_series(connection: sa.Connection, scope: Scope, step: str) -> dict[str, Any]:
    scope = scope.snapped("hour")
    size = choose_step(scope, step)
    sums = {"queries": lambda r: sa.func.sum(r.c.queries), "escalated": escalated_count}
    points = [
        {"t": iso(start), "queries": int(s["queries"]), "escalated": int(s["escalated"]),
         "escalation_rate": ratio(s["escalated"], s["queries"])}
        for start, s in _series(connection, scope, size, sums).items()
    ]  # fmt: skip
    return {
        "range": scope.describe(),
        "step": size,
        "points": points,
        "by_route": _by_route(connection, scope),
    }


def _new_group(route: str, adapter: str) -> dict[str, Any]:
    return {"route": route, "adapter": adapter or None, "queries": 0, "escalated": 0, "reasons": {}}


def _by_route(connection: sa.Connection, scope: Scope) -> list[dict[str, Any]]:
    r = counts(scope)
    key = route_key(r).label("key")
    query = sa.select(
        key, r.c.adapter, r.c.escalated, r.c.reason, sa.func.sum(r.c.queries)
    ).group_by(key, r.c.adapter, r.c.escalated, r.c.reason)
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for route, adapter, escalated, reason, count in connection.execute(query):
        group = groups.setdefault((route, adapter), _new_group(route, adapter))
        group["queries"] += int(count)
        if escalated:
            group["escalated"] += int(count)
            group["reasons"][reason or "unknown"] = group["reasons"].get(
                reason or "unknown", 0
            ) + int(count)
    rows = sorted(groups.values(), key=lambda g: (-g["queries"], g["route"], g["adapter"] or ""))
    for group in rows:
        group["escalation_rate"] = ratio(group["escalated"], group["queries"])
    return rows


def router_mix(connection: sa.Connection, scope: Scope) -> dict[str, Any]:
    """Router labels' shares, abstentions (routed, but no adapter: the base model answered),
    queries that bypassed the router (a model named directly), and router artifact versions."""
    scope = scope.snapped("hour")
    r = counts(scope)
    total = routed = abstained = 0
    labels: dict[str, dict[str, Any]] = {}
    query = sa.select(r.c.route, r.c.adapter, sa.func.sum(r.c.queries)).group_by(
        r.c.route, r.c.adapter
    )
    for label, adapter, count in connection.execute(query):
        total += int(count)
        if not label:
            continue
        routed += int(count)
        entry = labels.setdefault(label, {"label": label, "queries": 0, "abstained": 0})
        entry["queries"] += int(count)
        if adapter == "":
            entry["abstained"] += int(count)
            abstained += int(count)
    for entry in labels.values():
        entry["share"] = ratio(entry["queries"], routed)
    versions_query = (
        sa.select(
            r.c.router_version,
            sa.func.sum(r.c.queries),
            sa.func.min(r.c.bucket),
            sa.func.max(r.c.bucket),
        )
        .where(r.c.route != "")
        .group_by(r.c.router_version)
    )
    versions = [
        {
            "router_version": version or None,
            "queries": int(count),
            "first_seen": iso(first),
            "last_seen": iso(last),
        }
        for version, count, first, last in connection.execute(versions_query)
    ]
    return {
        "range": scope.describe(),
        "queries": total,
        "routed": routed,
        "unrouted": total - routed,
        "abstained": abstained,
        "abstention_rate": ratio(abstained, routed),
        "labels": sorted(labels.values(), key=lambda e: (-e["queries"], e["label"])),
        "versions": sorted(versions, key=lambda v: v["first_seen"] or ""),
    }


def filter_options(connection: sa.Connection) -> dict[str, Any]:
    """Tenants and routes seen (from the daily rollup), and the data's first and last hour."""
    daily = COUNTS_TABLES[1][0]
    key = route_key(daily).label("key")
    tenants = connection.execute(sa.select(daily.c.tenant).distinct().order_by(daily.c.tenant))
    routes = connection.execute(sa.select(key).distinct().order_by(key))
    # Two queries: each is one index probe; min() and max() together would scan the table.
    first = connection.scalar(sa.select(sa.func.min(hourly_table.c.bucket)))
    last = connection.scalar(sa.select(sa.func.max(hourly_table.c.bucket)))
    return {
        "tenants": [t for (t,) in tenants],
        "routes": [k for (k,) in routes],
        "first_hour": iso(first),
        "last_hour": iso(last + HOUR) if last is not None else None,
    }
