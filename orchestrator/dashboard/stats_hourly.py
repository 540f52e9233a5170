"""Stats from the hourly rollup: totals, cost and escalations over time, router mix."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from orchestrator.dashboard.rollup import hourly_table as H
from orchestrator.dashboard.scope import DAY, HOUR, Scope, floor_to, iso, route_key

AUTO_STEP_MAX_SPAN = timedelta(days=3)
TOKEN_SUMS = ("small_prompt", "small_completion", "large_prompt", "large_completion")


def money(value: Decimal | float | None) -> float:
    return round(float(value or 0), 10)


def ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _escalated_count() -> sa.ColumnElement[Any]:
    return sa.func.sum(sa.case((H.c.escalated, H.c.queries), else_=0))


def _error_count() -> sa.ColumnElement[Any]:
    return sa.func.sum(sa.case((H.c.status != "ok", H.c.queries), else_=0))


def summary(connection: sa.Connection, scope: Scope) -> dict[str, Any]:
    scope = scope.snapped(HOUR)
    query = sa.select(
        sa.func.sum(H.c.queries).label("queries"),
        _error_count().label("errors"),
        _escalated_count().label("escalated"),
        sa.func.sum(H.c.cost_usd).label("cost"),
        sa.func.sum(H.c.baseline_cost_usd).label("baseline"),
        sa.func.sum(H.c.cost_small_usd).label("cost_small"),
        sa.func.sum(H.c.cost_large_usd).label("cost_large"),
        *(sa.func.sum(H.c[f"{name}_tokens"]).label(name) for name in TOKEN_SUMS),
    ).where(*scope.where(H, "hour"))
    row = connection.execute(query).mappings().one()
    queries = int(row["queries"] or 0)
    cost, baseline = money(row["cost"]), money(row["baseline"])
    return {
        "range": scope.describe(),
        "queries": queries,
        "errors": int(row["errors"] or 0),
        "escalated": int(row["escalated"] or 0),
        "escalation_rate": ratio(int(row["escalated"] or 0), queries),
        "cost_usd": cost,
        "baseline_cost_usd": baseline,
        "savings_usd": round(baseline - cost, 10),
        "savings_rate": ratio(baseline - cost, baseline),
        "cost_small_usd": money(row["cost_small"]),
        "cost_large_usd": money(row["cost_large"]),
        "tokens": {
            model: {kind: int(row[f"{model}_{kind}"] or 0) for kind in ("prompt", "completion")}
            for model in ("small", "large")
        },
    }


def choose_step(scope: Scope, step: str) -> timedelta:
    if step == "hour":
        return HOUR
    if step == "day":
        return DAY
    if scope.since is not None and scope.until is not None:
        return HOUR if scope.until - scope.since <= AUTO_STEP_MAX_SPAN else DAY
    return DAY


def _by_step(rows: list[Any], step: timedelta) -> dict[datetime, dict[str, float]]:
    """Sum hourly rows into steps (hours or UTC days), keyed by step start, in time order."""
    buckets: dict[datetime, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in rows:
        bucket = buckets[floor_to(row.hour, step)]
        for name, value in row._mapping.items():
            if name != "hour":
                bucket[name] += float(value or 0)
    return dict(sorted(buckets.items()))


def cost_series(connection: sa.Connection, scope: Scope, step: str) -> dict[str, Any]:
    scope = scope.snapped(HOUR)
    size = choose_step(scope, step)
    query = (
        sa.select(
            H.c.hour,
            sa.func.sum(H.c.queries).label("queries"),
            sa.func.sum(H.c.cost_usd).label("cost"),
            sa.func.sum(H.c.baseline_cost_usd).label("baseline"),
        )
        .where(*scope.where(H, "hour"))
        .group_by(H.c.hour)
    )
    points = []
    for start, sums in _by_step(list(connection.execute(query)), size).items():
        cost, baseline = round(sums["cost"], 10), round(sums["baseline"], 10)
        points.append(
            {
                "t": iso(start),
                "queries": int(sums["queries"]),
                "cost_usd": cost,
                "baseline_cost_usd": baseline,
                "savings_usd": round(baseline - cost, 10),
            }
        )
    return {"range": scope.describe(), "step": "hour" if size == HOUR else "day", "points": points}


def escalation_series(connection: sa.Connection, scope: Scope, step: str) -> dict[str, Any]:
    scope = scope.snapped(HOUR)
    size = choose_step(scope, step)
    over_time = (
        sa.select(
            H.c.hour,
            sa.func.sum(H.c.queries).label("queries"),
            _escalated_count().label("escalated"),
        )
        .where(*scope.where(H, "hour"))
        .group_by(H.c.hour)
    )
    points = [
        {
            "t": iso(start),
            "queries": int(sums["queries"]),
            "escalated": int(sums["escalated"]),
            "escalation_rate": ratio(sums["escalated"], sums["queries"]),
        }
        for start, sums in _by_step(list(connection.execute(over_time)), size).items()
    ]
    return {
        "range": scope.describe(),
        "step": "hour" if size == HOUR else "day",
        "points": points,
        "by_route": _escalations_by_route(connection, scope),
    }


def _escalations_by_route(connection: sa.Connection, scope: Scope) -> list[dict[str, Any]]:
    key = route_key(H).label("route")
    query = (
        sa.select(key, H.c.adapter, H.c.escalated, H.c.reason, sa.func.sum(H.c.queries))
        .where(*scope.where(H, "hour"))
        .group_by(key, H.c.adapter, H.c.escalated, H.c.reason)
    )
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for route, adapter, escalated, reason, count in connection.execute(query):
        group = groups.setdefault(
            (route, adapter),
            {
                "route": route,
                "adapter": adapter or None,
                "queries": 0,
                "escalated": 0,
                "reasons": {},
            },
        )
        group["queries"] += int(count)
        if escalated:
            group["escalated"] += int(count)
            name = reason or "unknown"
            group["reasons"][name] = group["reasons"].get(name, 0) + int(count)
    rows = sorted(groups.values(), key=lambda g: (-g["queries"], g["route"], g["adapter"] or ""))
    for group in rows:
        group["escalation_rate"] = ratio(group["escalated"], group["queries"])
    return rows


def router_mix(connection: sa.Connection, scope: Scope) -> dict[str, Any]:
    """Router labels' shares, abstentions (routed, but no adapter: the base model answered),
    queries that bypassed the router (a model named directly), and router artifact versions."""
    scope = scope.snapped(HOUR)
    where = scope.where(H, "hour")
    labels_query = (
        sa.select(H.c.route, H.c.adapter, sa.func.sum(H.c.queries))
        .where(*where)
        .group_by(H.c.route, H.c.adapter)
    )
    total = routed = abstained = 0
    labels: dict[str, dict[str, Any]] = {}
    for label, adapter, count in connection.execute(labels_query):
        no_adapter = adapter == ""
        total += int(count)
        if not label:
            continue
        routed += int(count)
        entry = labels.setdefault(label, {"label": label, "queries": 0, "abstained": 0})
        entry["queries"] += int(count)
        if no_adapter:
            entry["abstained"] += int(count)
            abstained += int(count)
    for entry in labels.values():
        entry["share"] = ratio(entry["queries"], routed)
    versions_query = (
        sa.select(
            H.c.router_version,
            sa.func.sum(H.c.queries),
            sa.func.min(H.c.hour),
            sa.func.max(H.c.hour),
        )
        .where(*where, H.c.route != "")
        .group_by(H.c.router_version)
    )
    versions = [
        {
            "router_version": version or None,
            "queries": int(count),
            "first_hour": iso(first),
            "last_hour": iso(last),
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
        "versions": sorted(versions, key=lambda v: v["first_hour"] or ""),
    }


def filter_options(connection: sa.Connection) -> dict[str, Any]:
    """Tenants and routes seen, and the time span of the data, for the page's filters."""
    key = route_key(H).label("route")
    tenants = connection.execute(sa.select(H.c.tenant).distinct().order_by(H.c.tenant))
    routes = connection.execute(sa.select(key).distinct().order_by(key))
    first, last = connection.execute(sa.select(sa.func.min(H.c.hour), sa.func.max(H.c.hour))).one()
    return {
        "tenants": [t for (t,) in tenants],
        "routes": [r for (r,) in routes],
        "first_hour": iso(first),
        "last_hour": iso(last + HOUR) if last is not None else None,
    }
