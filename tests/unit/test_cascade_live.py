"""The live benchmark's metric math (cascade/live.py) on hand-made outcomes, exact values."""

from __future__ import annotations

import pytest

from cascade.live import (
    LiveOutcome,
    auroc,
    bootstrap_interval,
    curve_apgr,
    curve_savings_at,
    operating_point_savings,
    replay,
    strategy,
)
from cascade.policy import CascadePolicy, RoutePolicy


def _outcomes() -> list[LiveOutcome]:
    # small right on 0 and 3, large right everywhere; the signal ranks the two wrong ones lowest
    small = [True, False, False, True]
    scores = [0.9, 0.1, 0.2, 0.8]
    return [
        LiveOutcome(s, True, 1.0, 10.0, {"mean_prob": score})
        for s, score in zip(small, scores, strict=True)
    ]


def test_auroc_counts_ties_as_half() -> None:
    # positives 0.9, 0.3; negatives 0.8, 0.3: 0.9 beats both, 0.3 loses to 0.8 and ties 0.3
    assert auroc([0.9, 0.8, 0.3, 0.3], [True, False, True, False]) == 0.625
    assert auroc([0.1, 0.2, 0.9], [False, False, True]) == 1.0
    assert auroc([0.9, 0.1], [False, True]) == 0.0


def test_auroc_is_undefined_with_one_class() -> None:
    assert auroc([0.1, 0.2], [True, True]) is None
    with pytest.raises(ValueError, match="2 scores but 1 labels"):
        auroc([0.1, 0.2], [True])


def test_strategy_accuracy_and_cost_per_1k() -> None:
    result = strategy([True, False, True, True], [1.0, 2.0, 3.0, 4.0])
    assert (result.accuracy, result.cost_per_1k, result.queries) == (0.75, 2500.0, 4)
    with pytest.raises(ValueError):
        strategy([], [])


def test_operating_point_savings() -> None:
    kept, saved = operating_point_savings(0.76, 30.0, 0.8, 100.0)
    assert kept == pytest.approx(0.95) and saved == pytest.approx(0.7)
    assert operating_point_savings(0.5, 1.0, 0.0, 0.0) == (None, None)


def test_apgr_and_savings_at_95pct_on_a_perfect_ranking() -> None:
    rows = _outcomes()
    scores = [o.signals["mean_prob"] for o in rows]
    # PGR 0, 0.5, 1, 1, 1 at shares 0, .25, .5, .75, 1: area .0625 + .1875 + .25 + .25
    assert curve_apgr(rows, scores) == pytest.approx(0.75)
    # 95% of large (1.0) first reached with two escalations: (4 * 1 + 2 * 10) / 4 = 6 of 10
    assert curve_savings_at(rows, scores) == pytest.approx(0.4)
    # reversed ranking: the two right small answers are escalated first
    reverse = [1 - s for s in scores]
    assert curve_apgr(rows, reverse) == pytest.approx(0.25)
    assert curve_savings_at(rows, reverse) == pytest.approx(1 - (4 + 40) / 4 / 10)


def test_replay_follows_skip_then_threshold() -> None:
    outcome = LiveOutcome(False, True, 1.0, 10.0, {"mean_prob": 0.4}, route="legal")
    escalates = CascadePolicy(default=RoutePolicy(threshold=0.5))
    accepts = CascadePolicy(default=RoutePolicy(threshold=0.3))
    assert replay(outcome, escalates) == (True, 11.0, "low_confidence")
    assert replay(outcome, accepts) == (False, 1.0, "confident")
    skips = CascadePolicy(
        default=RoutePolicy(threshold=0.0),
        routes={"legal": RoutePolicy(threshold=0.3, skip_below=0.5)},
    )
    assert replay(outcome, skips, small_enough=0.2) == (True, 10.0, "predicted_hard")
    assert replay(outcome, skips, small_enough=0.7) == (False, 1.0, "confident")
    assert replay(outcome, skips, small_enough=None) == (False, 1.0, "confident")


def test_bootstrap_interval() -> None:
    assert bootstrap_interval(10, lambda idx: 0.5, draws=50) == (0.5, 0.5)
    assert bootstrap_interval(10, lambda idx: None, draws=5) is None
    values = [0.0] * 5 + [1.0] * 5
    low, high = bootstrap_interval(10, lambda idx: sum(values[i] for i in idx) / 10, seed=1)
    assert 0.1 <= low < 0.5 < high <= 0.9
    assert bootstrap_interval(10, lambda idx: sum(values[i] for i in idx) / 10, seed=1) == (
        low,
        high,
    )
    with pytest.raises(ValueError):
        bootstrap_interval(0, lambda idx: 1.0)
