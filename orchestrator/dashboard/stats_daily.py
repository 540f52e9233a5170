"""Stats from the daily rollups (confidence and latency histograms, the what-if projection)
and the two query lists, which read ledger rows by primary key or a bounded index range."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from orchestrator.dashboard.histogram import percentiles
from orchestrator.dashboard.levels import rollup_rows
from orchestrator.dashboard.scope import Scope
from orchestrator.dashboard.stats_hourly import counts, escalated_count, money, ratio
from orchestrator.dashboard.whatif import Fixed, RouteBins, curve, project
from orchestrator.ledger.rollup import (
    CONFIDENCE_BINS,
    CONFIDENCE_TABLES,
    LATENCY_TABLES,
    STAGES,
    latency_bin_bounds,
)

QUANTILES = (0.5, 0.9, 0.95, 0.99)
Thresholds = Callable[[str], float | None]


CONFIDENCE_COLUMNS = (
    "route", "bin", "queries", "escalated", "cost_usd", "cost_small_usd", "baseline_cost_usd",
    "fb_small_n", "fb_small_score", "fb_large_n", "fb_large_score",
)  # fmt: skip


def _route_bins(connection: sa.Connection, scope: Scope) -> dict[str, RouteBins]:
    c = rollup_rows(CONFIDENCE_TABLES, scope, CONFIDENCE_COLUMNS)
    sums = [sa.func.sum(c.c[name]) for name in CONFIDENCE_COLUMNS[2:]]
    query = sa.select(c.c.route, c.c.bin, *sums).group_by(c.c.route, c.c.bin)
    routes: dict[str, RouteBins] = defaultdict(RouteBins)
    for route, b, n, esc, cost, small, base, sn, ss, ln, ls in connection.execute(query):
        bins = routes[route]
        bins.queries[b], bins.escalated[b], bins.cost[b] = int(n), int(esc), float(cost)
        bins.cost_small[b], bins.baseline[b] = float(small), float(base)
        bins.fb_small_n[b], bins.fb_small_score[b] = int(sn), float(ss)
        bins.fb_large_n[b], bins.fb_large_score[b] = int(ln), float(ls)
    return dict(routes)


def confidence(connection: sa.Connection, scope: Scope, thresholds: Thresholds) -> dict[str, Any]:
    scope = scope.snapped("day")
    routes = [
        {
            "route": route,
            "threshold": thresholds(route),
            "queries": sum(bins.queries),
            "escalated": sum(bins.escalated),
            "bins": bins.queries,
            "escalated_bins": bins.escalated,
        }
        for route, bins in sorted(_route_bins(connection, scope).items())
    ]
    return {"range": scope.describe(), "bin_width": 1 / CONFIDENCE_BINS, "routes": routes}


def _route_totals(connection: sa.Connection, scope: Scope) -> tuple[int, int, float]:
    """Queries, escalations and cost of the scope, from the hourly rollup."""
    r = counts(scope)
    query = sa.select(sa.func.sum(r.c.queries), escalated_count(r), sa.func.sum(r.c.cost_usd))
    queries, escalated, cost = connection.execute(query).one()
    return int(queries or 0), int(escalated or 0), money(cost)


def what_if(
    connection: sa.Connection,
    scope: Scope,
    route: str,
    threshold: float | None,
    thresholds: Thresholds,
) -> dict[str, Any]:
    scope = Scope(scope.since, scope.until, scope.tenant, route).snapped("day")
    bins = _route_bins(connection, scope).get(route, RouteBins())
    queries, escalated, cost = _route_totals(connection, scope)
    fixed = Fixed(
        queries=queries - sum(bins.queries),
        escalated=escalated - sum(bins.escalated),
        cost=cost - sum(bins.cost),
    )
    current_threshold = thresholds(route)
    projected = project(bins, fixed, threshold if threshold is not None else current_threshold or 0)
    return {
        "range": scope.describe(),
        "route": route,
        "current_threshold": current_threshold,
        "actual": {
            "queries": queries,
            "escalated": escalated,
            "escalation_rate": ratio(escalated, queries),
            "cost_usd": round(cost, 10),
        },
        "with_confidence": sum(bins.queries),
        "feedback": {"small": sum(bins.fb_small_n), "large": sum(bins.fb_large_n)},
        "projected": projected.as_dict(),
        "curve": curve(bins, fixed),
    }


def latency(connection: sa.Connection, scope: Scope) -> dict[str, Any]:
    scope = scope.snapped("day")
    r = rollup_rows(LATENCY_TABLES, scope, ("stage", "bin", "queries", "sum_ms"))
    query = sa.select(
        r.c.stage, r.c.bin, sa.func.sum(r.c.queries), sa.func.sum(r.c.sum_ms)
    ).group_by(r.c.stage, r.c.bin)
    counts: dict[str, dict[int, int]] = {stage: {} for stage in STAGES}
    sums: dict[str, float] = defaultdict(float)
    for stage, b, n, total_ms in connection.execute(query):
        counts.setdefault(stage, {})[int(b)] = int(n)
        sums[stage] += float(total_ms)
    stages = []
    for stage, histogram in counts.items():
        n = sum(histogram.values())
        stages.append(
            {
                "stage": stage,
                "count": n,
                "mean_ms": sums[stage] / n if n else None,
                **percentiles(histogram, QUANTILES, latency_bin_bounds),
            }
        )
    return {"range": scope.describe(), "stages": stages}
