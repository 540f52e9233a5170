"""Metrics of a live cascade benchmark: per-query outcomes in, headline numbers out. Pure.

One row per test question (`LiveOutcome`): whether the small model's answer (the routed
adapter's, never escalated) and the large model's answer are right, each attempt's cost, the
confidence signals of the small answer, and what the service did in cascade mode (its final
answer right or not, its billed cost). From those:

* accuracy and cost per 1,000 queries of always-small, always-large and the service
  (`strategy`);
* AUROC of each signal for "the small answer is right" (`auroc`: the Mann-Whitney statistic,
  ties counted one half; None when every small answer is right or every one wrong);
* the deferral curve, APGR and the cost saved at 95% of the large model's accuracy for a
  signal (`cascade.evaluate.evaluate_scores`, cascade mode: an escalated query pays both);
* bootstrap 95% intervals (`bootstrap_interval`): the questions are resampled with
  replacement, the statistic recomputed, the 2.5th and 97.5th percentiles reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from cascade.evaluate import Mode, apgr, deferral_curve, evaluate_scores, first_meeting_quality
from cascade.policy import CascadePolicy

__all__ = [
    "LiveOutcome",
    "StrategyResult",
    "auroc",
    "bootstrap_interval",
    "curve_apgr",
    "curve_savings_at",
    "operating_point_savings",
    "replay",
    "signal_metrics",
    "strategy",
]


@dataclass(frozen=True)
class LiveOutcome:
    """One test question's outcomes (costs in any one unit: USD or CPU-seconds)."""

    small_correct: bool
    large_correct: bool
    small_cost: float
    large_cost: float
    signals: dict[str, float] = field(default_factory=dict)
    route: str = "base"


@dataclass(frozen=True)
class StrategyResult:
    accuracy: float
    cost_per_1k: float
    queries: int


def strategy(correct: Sequence[bool], cost: Sequence[float]) -> StrategyResult:
    """Accuracy and cost per 1,000 queries of one way of answering the questions."""
    if len(correct) == 0 or len(correct) != len(cost):
        raise ValueError("need the same, non-zero number of outcomes and costs")
    return StrategyResult(
        accuracy=float(np.mean(np.asarray(correct, dtype=float))),
        cost_per_1k=float(1000.0 * np.mean(np.asarray(cost, dtype=float))),
        queries=len(correct),
    )


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """P(a random positive scores above a random negative), ties one half; None if one class
    is missing."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(positive, dtype=bool)
    if len(s) != len(y):
        raise ValueError(f"{len(s)} scores but {len(y)} labels")
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def operating_point_savings(
    accuracy: float, cost: float, large_accuracy: float, large_cost: float
) -> tuple[float | None, float | None]:
    """(share of the large model's accuracy kept, share of its cost saved) of one policy."""
    kept = accuracy / large_accuracy if large_accuracy > 0 else None
    saved = 1.0 - cost / large_cost if large_cost > 0 else None
    return kept, saved


def signal_metrics(
    outcomes: Sequence[LiveOutcome], scores: Sequence[float], *, mode: Mode = "cascade"
) -> dict[str, float | None]:
    """APGR, random-policy APGR, savings at 95% of large's accuracy, and AUROC for one score."""
    evaluation = evaluate_scores(
        [o.small_correct for o in outcomes],
        [o.large_correct for o in outcomes],
        scores,
        [o.small_cost for o in outcomes],
        [o.large_cost for o in outcomes],
        mode=mode,
        random_draws=50,
    )
    return {
        "apgr": evaluation.apgr,
        "random_apgr": evaluation.random_apgr,
        "oracle_apgr": evaluation.oracle_apgr,
        "savings_at_95pct_quality": evaluation.savings_at_95pct_quality,
        "share_large_at_95pct_quality": evaluation.share_large_at_95pct_quality,
        "auroc": auroc(scores, [o.small_correct for o in outcomes]),
    }


def bootstrap_interval(
    count: int,
    statistic: Callable[[np.ndarray], float | None],
    *,
    draws: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of `statistic(indices)` over `count` resampled items.

    `statistic` gets an index array (with repeats) and returns the value on that resample, or
    None where it is undefined (such resamples are dropped); None when all were undefined."""
    if count < 1 or draws < 1:
        raise ValueError("need at least one item and one draw")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        value = statistic(rng.integers(0, count, size=count))
        if value is not None:
            values.append(value)
    if not values:
        return None
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(np.asarray(values, dtype=float), [tail, 100.0 - tail])
    return float(low), float(high)


def replay(
    outcome: LiveOutcome, policy: CascadePolicy, small_enough: float | None = None
) -> tuple[bool, float, str]:
    """What `policy` does with one query, from recorded outcomes: (final answer right, cost,
    reason). The skip (`skip_below`, on the difficulty scorer's `small_enough`) is checked
    first and pays only the large model; then the route's signal against its threshold; an
    escalated answer pays both attempts."""
    route_policy = policy.for_route(outcome.route)
    skip_below = route_policy.skip_below
    if skip_below is not None and small_enough is not None and small_enough < skip_below:
        return outcome.large_correct, outcome.large_cost, "predicted_hard"
    if route_policy.learned is not None:
        confidence = route_policy.learned.score_features(outcome.signals)
    else:
        confidence = outcome.signals.get(route_policy.signal.value, 0.0)
    if confidence >= route_policy.threshold:
        return outcome.small_correct, outcome.small_cost, "confident"
    return outcome.large_correct, outcome.small_cost + outcome.large_cost, "low_confidence"


def _columns(outcomes: Sequence[LiveOutcome]) -> list[np.ndarray]:
    return [
        np.array([getattr(o, name) for o in outcomes], dtype=float)
        for name in ("small_correct", "large_correct", "small_cost", "large_cost")
    ]


def curve_apgr(outcomes: Sequence[LiveOutcome], scores: Sequence[float]) -> float | None:
    """APGR of a score's deferral curve (cascade mode), without the random baseline."""
    s, la, cs, cl = _columns(outcomes)
    return apgr(deferral_curve(s, la, scores, cs, cl))


def curve_savings_at(
    outcomes: Sequence[LiveOutcome], scores: Sequence[float], quality_ratio: float = 0.95
) -> float | None:
    """Cost saved against always-large at the fewest escalations keeping `quality_ratio` of the
    large model's accuracy (cascade mode); None if no point does or large costs nothing."""
    s, la, cs, cl = _columns(outcomes)
    point = first_meeting_quality(deferral_curve(s, la, scores, cs, cl), quality_ratio * la.mean())
    if point is None or cl.mean() <= 0:
        return None
    return float(1.0 - point.cost_per_query / cl.mean())
