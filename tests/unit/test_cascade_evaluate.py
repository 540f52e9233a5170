"""Offline metrics: exact values on a hand-made set, and properties any data must satisfy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade.evaluate import (
    apgr,
    cpt,
    deferral_curve,
    evaluate_by_route,
    evaluate_columns,
    evaluate_scores,
    operating_point,
)
from cascade.outcomes import OutcomeColumns

SMALL = [1.0, 0.0, 0.0, 1.0]
LARGE = [1.0, 1.0, 1.0, 0.0]
SCORES = [0.9, 0.2, 0.5, 0.7]
C_SMALL = [1.0] * 4
C_LARGE = [10.0] * 4


def test_deferral_curve_exact() -> None:
    curve = deferral_curve(SMALL, LARGE, SCORES, C_SMALL, C_LARGE)
    assert [p.share_large for p in curve] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [p.quality for p in curve] == [0.5, 0.75, 1.0, 0.75, 0.75]
    assert [p.pgr for p in curve] == [0.0, 1.0, 2.0, 1.0, 1.0]
    assert [p.cost_per_query for p in curve] == [1.0, 3.5, 6.0, 8.5, 11.0]
    assert [p.threshold for p in curve] == [0.0, 0.5, 0.7, 0.9, 1.0]
    routed = deferral_curve(SMALL, LARGE, SCORES, C_SMALL, C_LARGE, mode="route")
    assert [p.cost_per_query for p in routed] == [1.0, 3.25, 5.5, 7.75, 10.0]


def test_headline_metrics_exact() -> None:
    e = evaluate_scores(SMALL, LARGE, SCORES, C_SMALL, C_LARGE, random_draws=3)
    assert (e.quality_small, e.quality_large) == (0.5, 0.75)
    assert e.apgr == pytest.approx(1.125)
    assert e.cpt_50 == pytest.approx(0.125)
    assert e.cpt_80 == pytest.approx(0.2)
    # 95% of 0.75 = 0.7125, first met after one escalation: cost 3.5 of 10
    assert e.savings_at_95pct_quality == pytest.approx(0.65)
    assert e.share_large_at_95pct_quality == 0.25
    assert e.cost_per_1k_always_large == pytest.approx(10_000)
    assert e.cost_per_1k_at_95pct_quality == pytest.approx(3_500)
    # oracle order s - l = 0,-1,-1,1: the tie is one step; PGR 0,2,2,1 at 0,.5,.75,1
    assert e.oracle_apgr == pytest.approx(1.375)
    assert e.random_apgr is not None and e.random_apgr_std is not None
    data = e.to_dict(curve_points=5)
    assert [p["share_large"] for p in data["curve"]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert {"apgr", "cpt_50", "cpt_80", "random_apgr", "savings_at_95pct_quality"} <= set(data)


def test_ties_are_deferred_together_and_constant_score_is_random() -> None:
    curve = deferral_curve(SMALL, LARGE, [0.5] * 4, C_SMALL, C_LARGE)
    assert [p.share_large for p in curve] == [0.0, 1.0]
    assert apgr(curve) == pytest.approx(0.5)
    assert cpt(curve, 0.5) == pytest.approx(0.5)


def test_score_of_one_cannot_be_escalated_by_a_threshold() -> None:
    curve = deferral_curve([0.0], [1.0], [1.0], [1.0], [1.0])
    assert curve[-1].threshold is None


def test_no_gap_means_no_pgr() -> None:
    e = evaluate_scores([1, 1], [1, 0], [0.1, 0.2], [1, 1], [2, 2], random_draws=2)
    assert e.apgr is None and e.cpt_50 is None and e.random_apgr is None


def test_mismatched_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="same"):
        deferral_curve([1.0], [1.0, 0.0], [0.5], [1.0], [1.0])
    with pytest.raises(ValueError, match="same"):
        deferral_curve([], [], [], [], [])


def test_operating_point() -> None:
    columns = OutcomeColumns(SMALL, LARGE, C_SMALL, C_LARGE)
    point = operating_point(columns, [False, True, True, False])
    assert (point.share_large, point.quality, point.cost_per_1k) == (0.5, 1.0, 6000.0)
    routed = operating_point(columns, [False, True, True, False], mode="route")
    assert routed.cost_per_1k == 5500.0


def test_by_route() -> None:
    columns = OutcomeColumns(SMALL, LARGE, C_SMALL, C_LARGE)
    results = evaluate_by_route(columns, SCORES, {"a": [0, 1], "b": [2, 3]}, random_draws=1)
    assert results["a"].records == 2 and results["b"].quality_small == 0.5
    assert evaluate_columns(columns, SCORES, random_draws=1).apgr == pytest.approx(1.125)


@st.composite
def dominated(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Binary outcomes where the small model is never right when the large one is wrong."""
    n = draw(st.integers(4, 60))
    large = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=float)
    keep = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=float)
    small = large * keep
    large[0], small[0] = 1.0, 0.0  # a positive gap
    return small, large


@given(dominated())
def test_perfect_and_inverted_scorers(data: tuple[np.ndarray, np.ndarray]) -> None:
    small, large = data
    n, g = len(small), float((large - small).mean())
    ones = np.ones(n)
    perfect = evaluate_scores(small, large, 1 - (large - small), ones, ones, random_draws=1)
    inverted = evaluate_scores(small, large, large - small, ones, ones, random_draws=1)
    # PGR climbs to 1 over the share g the large model alone fixes: area 1 - g/2.
    assert perfect.apgr == pytest.approx(1 - g / 2)
    assert perfect.apgr == pytest.approx(perfect.oracle_apgr)
    assert inverted.apgr == pytest.approx(g / 2)
    assert inverted.apgr is not None and inverted.apgr < 0.5
    assert perfect.cpt_80 == pytest.approx(0.8 * g)


def test_perfect_scorer_approaches_one_and_inverted_zero_when_gap_is_rare() -> None:
    n = 1000
    small = np.ones(n)
    large = np.ones(n)
    small[:10] = 0.0
    ones = np.ones(n)
    perfect = evaluate_scores(small, large, small, ones, ones, random_draws=1)
    inverted = evaluate_scores(small, large, 1 - small, ones, ones, random_draws=1)
    assert perfect.apgr == pytest.approx(0.995)
    assert inverted.apgr == pytest.approx(0.005)


def test_random_policy_is_near_half() -> None:
    rng = np.random.default_rng(7)
    large = (rng.random(4000) < 0.7).astype(float)
    small = large * (rng.random(4000) < 0.6)
    ones = np.ones(4000)
    e = evaluate_scores(small, large, rng.random(4000), ones, ones, random_draws=10, seed=3)
    assert e.apgr == pytest.approx(0.5, abs=0.05)
    assert e.random_apgr == pytest.approx(0.5, abs=0.02)
    assert e.random_apgr_std is not None and e.random_apgr_std < 0.03


outcome_lists = st.integers(2, 40).flatmap(
    lambda n: st.tuples(
        *(st.lists(st.floats(0, 1), min_size=n, max_size=n) for _ in range(5)),
    )
)


@settings(max_examples=60)
@given(outcome_lists)
def test_curve_invariants(data: tuple[list[float], ...]) -> None:
    small, large, scores, c_small, c_large = data
    curve = deferral_curve(small, large, scores, c_small, c_large)
    shares = [p.share_large for p in curve]
    costs = [p.cost_per_query for p in curve]
    assert shares[0] == 0.0 and shares[-1] == 1.0
    assert all(a < b for a, b in itertools.pairwise(shares))
    assert all(a <= b + 1e-9 for a, b in itertools.pairwise(costs))  # cascade pays more
    assert curve[0].quality == pytest.approx(np.mean(small))
    assert curve[-1].quality == pytest.approx(np.mean(large))
    thresholds = [p.threshold for p in curve if p.threshold is not None]
    assert thresholds == sorted(thresholds)
    if curve[0].pgr is not None:
        assert curve[0].pgr == pytest.approx(0.0) and curve[-1].pgr == pytest.approx(1.0)
        oracle = deferral_curve(small, large, np.subtract(small, large), c_small, c_large)
        value, best = apgr(curve), apgr(oracle)
        assert value is not None and best is not None and value <= best + 1e-9
        # the oracle's curve rises then falls: every point is at or above the straight line
        a50, a80 = cpt(curve, 0.5), cpt(curve, 0.8)
        assert a50 is not None and a80 is not None and a50 <= a80 + 1e-12
