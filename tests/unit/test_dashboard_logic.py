"""Pure parts of the dashboard: percentiles from buckets, the what-if projection, range
snapping, the bin expressions the triggers use, and the threshold lookup."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from cascade.policy import CascadePolicy, RoutePolicy
from orchestrator.dashboard.histogram import percentile, percentiles
from orchestrator.dashboard.levels import pieces
from orchestrator.dashboard.scope import Scope, ScopeError
from orchestrator.dashboard.source import threshold_lookup
from orchestrator.dashboard.whatif import Fixed, RouteBins, project, threshold_bin
from orchestrator.ledger.rollup import (
    LATENCY_EDGES,
    confidence_bin,
    latency_bin,
    latency_bin_bounds,
)
from orchestrator.ledger.rollup_sql import Dialect


def unit_bounds(b: int) -> tuple[float, float]:
    return float(b), float(b + 1)


def test_percentile_interpolates_inside_the_bucket() -> None:
    counts = {0: 2, 1: 2}  # two values in [0, 1), two in [1, 2)
    assert percentile(counts, 0.5, unit_bounds) == pytest.approx(1.0)
    assert percentile(counts, 0.75, unit_bounds) == pytest.approx(1.5)
    assert percentile(counts, 1.0, unit_bounds) == pytest.approx(2.0)
    assert percentile({}, 0.5, unit_bounds) is None
    assert percentiles({3: 4}, (0.5, 0.99), unit_bounds) == {"p50": 3.5, "p99": pytest.approx(3.99)}


def test_latency_bins_are_ten_per_decade() -> None:
    assert latency_bin(0.5) == 0
    assert latency_bin(1.0) == 1
    assert latency_bin(9.99) == 10
    assert latency_bin(10.0) == 11
    assert latency_bin(1e9) == len(LATENCY_EDGES)
    low, high = latency_bin_bounds(latency_bin(123.0))
    assert low <= 123.0 < high


@pytest.mark.parametrize("value", [0.0, 0.3, 0.99, 1.0, 1.2589, 7.5, 99.99, 100.0, 512.0, 1e5, 1e7])
def test_sqlite_latency_bin_matches_python(value: float) -> None:
    expression = Dialect("sqlite").latency_bin(":v")
    (result,) = sqlite3.connect(":memory:").execute(f"SELECT {expression}", {"v": value}).fetchone()
    assert result == latency_bin(value)


@pytest.mark.parametrize("value", [0.0, 0.005, 0.29, 0.58, 0.5799, 0.999, 1.0])
def test_confidence_bins(value: float) -> None:
    expression = Dialect("sqlite").confidence_bin(":v")
    (result,) = sqlite3.connect(":memory:").execute(f"SELECT {expression}", {"v": value}).fetchone()
    assert result == confidence_bin(value)
    assert confidence_bin(0.58) == 58 and confidence_bin(0.5799) == 57 and confidence_bin(1.0) == 99


def bins_of(rows: list[tuple[float, bool, float, float]]) -> RouteBins:
    """rows: (confidence, escalated, small cost, baseline)."""
    bins = RouteBins()
    for conf, escalated, small, baseline in rows:
        b = confidence_bin(conf)
        bins.queries[b] += 1
        bins.escalated[b] += escalated
        bins.cost_small[b] += small
        bins.baseline[b] += baseline
        bins.cost[b] += small + (baseline if escalated else 0)
    return bins


def test_projection_escalates_bins_below_the_threshold() -> None:
    bins = bins_of([(0.2, True, 1.0, 10.0), (0.5, False, 1.0, 10.0), (0.9, False, 1.0, 10.0)])
    fixed = Fixed(queries=1, escalated=1, cost=7.0)
    at_half = project(bins, fixed, 0.5)  # 0.5 is not below 0.5: only 0.2 escalates
    assert (at_half.escalated, at_half.queries, at_half.cost_usd) == (2, 4, 3.0 + 10.0 + 7.0)
    everything = project(bins, fixed, 1.0)
    assert (everything.escalated, everything.cost_usd) == (4, 3.0 + 30.0 + 7.0)
    nothing = project(bins, fixed, 0.0)
    assert (nothing.escalated, nothing.escalation_rate) == (1, 0.25)
    assert at_half.quality is None and at_half.quality_coverage is None


def test_projection_quality_uses_bin_feedback_then_the_route_mean() -> None:
    bins = bins_of([(0.2, True, 1.0, 10.0), (0.9, False, 1.0, 10.0)])
    bins.fb_large_n[20], bins.fb_large_score[20] = 2, 1.0  # large answers in bin 20: 0.5
    bins.fb_small_n[90], bins.fb_small_score[90] = 1, 1.0  # the small answer in bin 90: 1.0
    current = project(bins, Fixed(), 0.5)
    assert current.quality == pytest.approx(0.75) and current.quality_coverage == 1.0
    higher = project(bins, Fixed(), 0.95)  # bin 90 goes large: no own score, large mean 0.5
    assert higher.quality == pytest.approx(0.5) and higher.quality_coverage == 0.5


def test_threshold_snaps_to_bins() -> None:
    assert threshold_bin(0.604) == 60 and threshold_bin(0.606) == 61
    assert threshold_bin(-1) == 0 and threshold_bin(2) == 100


def test_scope_snaps_outward_and_reads_naive_times_as_utc() -> None:
    scope = Scope.parse(
        datetime(2025, 1, 1, 10, 30),
        datetime(2025, 1, 2, 3, 0, tzinfo=timezone(timedelta(hours=2))),
        "t",
        None,
    )
    assert scope.since == datetime(2025, 1, 1, 10, 30, tzinfo=UTC)
    hourly = scope.snapped("hour")
    assert (hourly.since, hourly.until) == (
        datetime(2025, 1, 1, 10, tzinfo=UTC),
        datetime(2025, 1, 2, 1, tzinfo=UTC),
    )
    daily = scope.snapped("day")
    assert (daily.since, daily.until) == (
        datetime(2025, 1, 1, tzinfo=UTC),
        datetime(2025, 1, 3, tzinfo=UTC),
    )
    with pytest.raises(ScopeError) as refused:  # the stats routes answer it with a 400
        Scope.parse(datetime(2025, 1, 2), datetime(2025, 1, 1), None, None)
    assert refused.value.param == "since"


def test_threshold_lookup() -> None:
    policy = CascadePolicy(
        default=RoutePolicy(threshold=0.5), routes={"math": RoutePolicy(threshold=0.7)}
    )
    lookup = threshold_lookup(policy)
    assert (lookup("math"), lookup("code")) == (0.7, 0.5)
    mapping = threshold_lookup(lambda: {"math": 0.6, "*": 0.4})
    assert (mapping("math"), mapping("other")) == (0.6, 0.4)
    assert threshold_lookup({"math": 0.6})("other") is None


def test_pieces_read_whole_coarse_buckets_and_fine_ends() -> None:
    fine, coarse = sa.Table("fine", sa.MetaData()), sa.Table("coarse", sa.MetaData())
    levels = ((fine, "hour"), (coarse, "day"))
    at = lambda d, h=0: datetime(2025, 1, d, h, tzinfo=UTC)  # noqa: E731
    split = [(p.table.name, p.since, p.until) for p in pieces(levels, at(1, 5), at(4, 7))]
    assert split == [("coarse", at(2), at(4)), ("fine", at(1, 5), at(2)), ("fine", at(4), at(4, 7))]
    inside_a_day = pieces(levels, at(1, 5), at(1, 9))
    assert [(p.table.name, p.since, p.until) for p in inside_a_day] == [
        ("fine", at(1, 5), at(1, 9))
    ]
    open_ended = [(p.table.name, p.since, p.until) for p in pieces(levels, None, at(3, 2))]
    assert open_ended == [("coarse", None, at(3)), ("fine", at(3), at(3, 2))]
    assert [(p.table.name, p.since, p.until) for p in pieces(levels, None, None)] == [
        ("coarse", None, None)
    ]
    months = pieces(((fine, "day"), (coarse, "month")), datetime(2025, 1, 20, tzinfo=UTC), None)
    assert [(p.table.name, p.since) for p in months] == [
        ("coarse", datetime(2025, 2, 1, tzinfo=UTC)),
        ("fine", datetime(2025, 1, 20, tzinfo=UTC)),
    ]
