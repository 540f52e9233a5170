"""Offline evaluation of a cascade (or pre-generation router) score on outcome data.

A *score* per query says how likely the small model's answer is good enough (a confidence
signal, or a difficulty router's probability that the small model suffices). A policy with
threshold t sends every query with score < t to the large model. Sweeping t gives the
**deferral curve**: quality against the share of queries sent to the large model.

Definitions (RouteLLM, Ong et al. 2024, "RouteLLM: Learning to Route LLMs with Preference Data"):

* quality q(x): mean correctness when the share x of queries (lowest scores first) gets the
  large model's answer and the rest keep the small model's.
* PGR(x) = (q(x) - q_small) / (q_large - q_small): share of the performance gap recovered.
* APGR = the area under PGR(x) over x in [0, 1] (trapezoids over every achievable point, i.e.
  RouteLLM's ``(AUC - weak_auc) / (strong_auc - weak_auc)`` at full resolution). A random
  policy scores 0.5 in expectation. The best possible ordering (the *oracle*) does not reach
  1: when a share g of queries is fixed only by the large model, the oracle's PGR climbs over
  x in [0, g], so its APGR is 1 - g/2 (more when the small model beats the large one on some
  queries). ``oracle_apgr`` is reported beside it as the ceiling.
* CPT(p): the smallest share of large-model calls at which PGR reaches p (interpolated).

Queries with equal scores cannot be separated by any threshold, so they are deferred together;
the straight segment between the two achievable points is the expected value of breaking the
tie at random. Costs are statistics here, not bills, so they are floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from cascade.outcomes import OutcomeColumns

__all__ = [
    "CurvePoint",
    "Evaluation",
    "OperatingPoint",
    "apgr",
    "cpt",
    "deferral_curve",
    "evaluate_by_route",
    "evaluate_columns",
    "evaluate_scores",
    "operating_point",
]

Floats = Sequence[float] | np.ndarray
Mode = Literal["cascade", "route"]
"""cascade: the small model always runs, escalations pay both. route: one model per query."""


@dataclass(frozen=True)
class CurvePoint:
    """One achievable operating point of the policy."""

    share_large: float
    quality: float
    pgr: float | None
    cost_per_query: float
    threshold: float | None
    """Threshold in [0, 1] that realises this point (escalate score < threshold); None if no
    threshold in [0, 1] does (escalating queries whose score is exactly 1.0)."""


def _arrays(values: Floats) -> np.ndarray:
    return np.asarray(values, dtype=float)


def deferral_curve(
    small: Floats,
    large: Floats,
    scores: Floats,
    small_cost: Floats,
    large_cost: Floats,
    *,
    mode: Mode = "cascade",
) -> list[CurvePoint]:
    """Every achievable point, from nothing escalated (x=0) to everything (x=1)."""
    s, la, sc = _arrays(small), _arrays(large), _arrays(scores)
    c_small, c_large = _arrays(small_cost), _arrays(large_cost)
    n = len(s)
    if n == 0 or not len(la) == len(sc) == len(c_small) == len(c_large) == n:
        raise ValueError("need the same, non-zero number of outcomes, scores and costs")
    order = np.argsort(sc, kind="stable")
    sorted_scores = sc[order]
    gain = np.concatenate([[0.0], np.cumsum((la - s)[order])])
    extra = c_large if mode == "cascade" else c_large - c_small
    cost = np.concatenate([[0.0], np.cumsum(extra[order])]) + c_small.sum()
    q_small, q_large = s.mean(), la.mean()
    gap = q_large - q_small
    m = np.arange(n + 1)
    # A cut after position m-1 is achievable only between two different scores.
    keep = np.ones(n + 1, dtype=bool)
    keep[1:n] = sorted_scores[1:] != sorted_scores[:-1]
    points = []
    for i in m[keep]:
        quality = q_small + gain[i] / n
        points.append(
            CurvePoint(
                share_large=float(i / n),
                quality=float(quality),
                pgr=float((quality - q_small) / gap) if gap > 0 else None,
                cost_per_query=float(cost[i] / n),
                threshold=_threshold(sorted_scores, int(i)),
            )
        )
    return points


def _threshold(sorted_scores: np.ndarray, i: int) -> float | None:
    if i == 0:
        return 0.0  # scores are >= 0, so nothing is below it
    if i < len(sorted_scores):
        return float(sorted_scores[i])
    return 1.0 if sorted_scores[-1] < 1.0 else None


def apgr(curve: Sequence[CurvePoint]) -> float | None:
    """Area under PGR over the share sent to the large model; None if large is not better."""
    if any(p.pgr is None for p in curve):
        return None
    x = np.array([p.share_large for p in curve])
    y = np.array([p.pgr for p in curve], dtype=float)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def cpt(curve: Sequence[CurvePoint], recovered: float) -> float | None:
    """Smallest share of large calls at which PGR reaches ``recovered`` (interpolated)."""
    previous: CurvePoint | None = None
    for point in curve:
        if point.pgr is None:
            return None
        if point.pgr >= recovered:
            if previous is None or previous.pgr is None:
                return point.share_large
            fraction = (recovered - previous.pgr) / (point.pgr - previous.pgr)
            return previous.share_large + fraction * (point.share_large - previous.share_large)
        previous = point
    return None


def first_meeting_quality(curve: Sequence[CurvePoint], quality: float) -> CurvePoint | None:
    """The achievable point with the fewest large calls whose quality is at least ``quality``."""
    return next((p for p in curve if p.quality >= quality - 1e-12), None)


def _savings(
    curve: Sequence[CurvePoint], quality_ratio: float, always_large: float
) -> float | None:
    point = first_meeting_quality(curve, quality_ratio * curve[-1].quality)
    if point is None or always_large <= 0:
        return None
    return 1.0 - point.cost_per_query / always_large


@dataclass(frozen=True)
class Evaluation:
    """Headline metrics of one score on one outcome set, with baselines measured beside it."""

    records: int
    mode: str
    quality_small: float
    quality_large: float
    apgr: float | None
    cpt_50: float | None
    cpt_80: float | None
    savings_at_95pct_quality: float | None
    share_large_at_95pct_quality: float | None
    cost_per_1k_always_large: float
    cost_per_1k_at_95pct_quality: float | None
    random_apgr: float | None
    random_apgr_std: float | None
    random_savings_at_95pct_quality: float | None
    oracle_apgr: float | None
    curve: list[CurvePoint] = field(repr=False)

    def to_dict(self, curve_points: int = 21) -> dict[str, Any]:
        """JSON-ready; the curve is resampled at ``curve_points`` evenly spaced shares."""
        data = asdict(self)
        data["curve"] = [asdict(p) for p in resample(self.curve, curve_points)]
        return data


def resample(curve: Sequence[CurvePoint], points: int) -> list[CurvePoint]:
    """The achievable point nearest below each of ``points`` evenly spaced shares."""
    shares = [p.share_large for p in curve]
    picked = []
    for target in np.linspace(0.0, 1.0, points):
        index = int(np.searchsorted(shares, target + 1e-12, side="right")) - 1
        picked.append(curve[max(index, 0)])
    return picked


def _random_baseline(
    columns: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    mode: Mode,
    draws: int,
    seed: int,
    always_large: float,
) -> tuple[float | None, float | None, float | None]:
    """Mean and spread of APGR, and mean savings, over ``draws`` uniformly random scores."""
    s, la, cs, cl = columns
    rng = np.random.default_rng(seed)
    apgrs, savings = [], []
    for _ in range(draws):
        curve = deferral_curve(s, la, rng.random(len(s)), cs, cl, mode=mode)
        apgrs.append(apgr(curve))
        savings.append(_savings(curve, 0.95, always_large))
    if draws == 0 or any(a is None for a in apgrs):
        return None, None, None
    values = np.array(apgrs, dtype=float)
    saved = [s for s in savings if s is not None]
    return float(values.mean()), float(values.std()), float(np.mean(saved)) if saved else None


def evaluate_scores(
    small: Floats,
    large: Floats,
    scores: Floats,
    small_cost: Floats,
    large_cost: Floats,
    *,
    mode: Mode = "cascade",
    random_draws: int = 20,
    seed: int = 0,
) -> Evaluation:
    """All metrics for one score, with a random policy (``random_draws`` seeded draws)."""
    s, la, cs, cl = (_arrays(v) for v in (small, large, small_cost, large_cost))
    curve = deferral_curve(s, la, scores, cs, cl, mode=mode)
    always_large = float(cl.mean())
    at95 = first_meeting_quality(curve, 0.95 * float(la.mean()))
    oracle = deferral_curve(s, la, s - la, cs, cl, mode=mode)
    rand_apgr, rand_std, rand_savings = _random_baseline(
        (s, la, cs, cl), mode, random_draws, seed, always_large
    )
    return Evaluation(
        records=len(s),
        mode=mode,
        quality_small=float(s.mean()),
        quality_large=float(la.mean()),
        apgr=apgr(curve),
        cpt_50=cpt(curve, 0.5),
        cpt_80=cpt(curve, 0.8),
        savings_at_95pct_quality=_savings(curve, 0.95, always_large),
        share_large_at_95pct_quality=None if at95 is None else at95.share_large,
        cost_per_1k_always_large=1000 * always_large,
        cost_per_1k_at_95pct_quality=None if at95 is None else 1000 * at95.cost_per_query,
        random_apgr=rand_apgr,
        random_apgr_std=rand_std,
        random_savings_at_95pct_quality=rand_savings,
        oracle_apgr=apgr(oracle),
        curve=curve,
    )


def evaluate_columns(
    columns: OutcomeColumns, scores: Sequence[float], **options: Any
) -> Evaluation:
    """``evaluate_scores`` on ``OutcomeColumns`` (options as for ``evaluate_scores``)."""
    return evaluate_scores(
        columns.small, columns.large, scores, columns.small_cost, columns.large_cost, **options
    )


def evaluate_by_route(
    columns: OutcomeColumns,
    scores: Sequence[float],
    groups: dict[str, list[int]],
    **options: Any,
) -> dict[str, Evaluation]:
    """One evaluation per route (``groups`` as from ``cascade.outcomes.group_by_route``)."""
    results = {}
    for route, indices in groups.items():
        subset = columns.subset(indices)
        results[route] = evaluate_columns(subset, [scores[i] for i in indices], **options)
    return results


@dataclass(frozen=True)
class OperatingPoint:
    """What one fixed set of escalation decisions achieves on outcome data."""

    records: int
    share_large: float
    quality: float
    quality_small: float
    quality_large: float
    cost_per_1k: float
    cost_per_1k_always_large: float


def operating_point(
    columns: OutcomeColumns, escalate: Sequence[bool], *, mode: Mode = "cascade"
) -> OperatingPoint:
    """Quality, escalation share and cost of these decisions (True = the large model answers)."""
    s, la = _arrays(columns.small), _arrays(columns.large)
    cs, cl = _arrays(columns.small_cost), _arrays(columns.large_cost)
    up = np.asarray(escalate, dtype=bool)
    if len(up) != len(s) or len(s) == 0:
        raise ValueError("need one decision per outcome, and at least one outcome")
    small_paid = np.ones_like(up) if mode == "cascade" else ~up
    cost = (cs * small_paid + cl * up).mean()
    return OperatingPoint(
        records=len(s),
        share_large=float(up.mean()),
        quality=float(np.where(up, la, s).mean()),
        quality_small=float(s.mean()),
        quality_large=float(la.mean()),
        cost_per_1k=float(1000 * cost),
        cost_per_1k_always_large=float(1000 * cl.mean()),
    )
