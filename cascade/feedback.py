"""Outcome data from live traffic: ledger rows with feedback -> what calibration can use.

What a feedback row says depends on who answered:

* **accepted** (the small model answered): the feedback is the small answer's correctness at
  that confidence. This is the only place the small model's quality is observed.
* **escalated** (the large model answered): the feedback judges the large answer. The small
  answer was never shown, so its correctness is *unknown*; the row tells the large model's
  quality on low-confidence queries and what an escalation costs.

Consequences (the biases ``spillway cascade calibrate --from-ledger`` documents):

1. Only thresholds above the highest confidence of an escalated row are learnable
   (``cascade.calibrate.learnable_floor``): below it, some kept answers would be small answers
   nobody judged. The threshold can be raised freely, lowered only down to that floor. Learning
   lower thresholds needs exploration (serving a random sample of low-confidence small answers),
   which the service does not do.
2. The large model's quality on accepted queries is not observed; it is estimated as the mean
   feedback on escalated answers of the same route (else of all routes), or given by the
   caller. Escalated queries are the harder ones, so this estimate is likely low, which makes a
   relative quality target (``quality=X``) easier to meet than it should be.
3. Feedback is volunteered: which queries get it is not random (failures may be reported
   more often). Nothing here corrects for that.

Records whose small answer is unknown carry ``small = 0.0`` in the columns (a lower bound:
never used at a learnable threshold, where they are always escalated); the reported
``quality_small`` is therefore a lower bound too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from cascade.confidence import LearnedSignal
from cascade.outcomes import OutcomeColumns

__all__ = [
    "FeedbackError",
    "FeedbackOutcomes",
    "FeedbackRecord",
    "feedback_outcomes",
    "fit_learned_from_feedback",
]


class FeedbackError(ValueError):
    """Feedback rows that cannot be calibrated on (the message says what is missing)."""


class FeedbackRecord(BaseModel):
    """One answered query with feedback, as the ledger recorded it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    route: str = Field(
        description="The policy route the service decided with (adapter, route or 'base')."
    )
    confidence: float = Field(
        ge=0.0, le=1.0, description="The cascade's confidence for the small answer."
    )
    escalated: bool = Field(
        description="Whether the large model answered (the feedback judges it)."
    )
    score: float = Field(
        ge=0.0, le=1.0, description="The feedback: 1 correct, 0 wrong, or a score."
    )
    small_cost: float = Field(ge=0.0, description="What the small attempt cost (USD).")
    large_cost: float = Field(
        ge=0.0,
        description="What the large attempt cost (escalated) or would have cost (accepted: the "
        "ledger's always-large baseline), USD.",
    )


@dataclass(frozen=True)
class FeedbackOutcomes:
    """Columns, scores and groups for ``cascade.calibrate.calibrate``."""

    columns: OutcomeColumns
    scores: list[float]
    small_known: list[bool]
    groups: dict[str, list[int]]
    large_quality: dict[str, float]
    """The large-model quality assumed for each route's accepted records."""
    fallback_routes: list[str]
    """Routes with fewer than the minimum records: they get no threshold of their own."""


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _large_quality(records: Sequence[FeedbackRecord], given: float | None) -> dict[str, float]:
    """Per route: ``given``, else the mean feedback on escalated answers (route, else all)."""
    routes = sorted({r.route for r in records})
    if given is not None:
        return dict.fromkeys(routes, given)
    overall = _mean([r.score for r in records if r.escalated])
    if overall is None:
        raise FeedbackError(
            "no feedback on escalated (large-model) answers, so the large model's quality is "
            "unknown; give it explicitly (e.g. --large-quality 0.8 from an offline evaluation)"
        )
    quality = {}
    for route in routes:
        own = _mean([r.score for r in records if r.escalated and r.route == route])
        quality[route] = own if own is not None else overall
    return quality


def feedback_outcomes(
    records: Iterable[FeedbackRecord],
    *,
    min_route_records: int = 50,
    large_quality: float | None = None,
) -> FeedbackOutcomes:
    """Turn feedback records into calibration inputs (see the module docstring for the bias).

    Routes with at least ``min_route_records`` records become groups; the others fall back to
    the default threshold, which is fitted on every record.
    """
    rows = list(records)
    if not rows:
        raise FeedbackError("no ledger rows with feedback to calibrate on")
    if large_quality is not None and not 0.0 <= large_quality <= 1.0:
        raise FeedbackError(f"large quality must be in [0, 1], got {large_quality}")
    assumed = _large_quality(rows, large_quality)
    columns = OutcomeColumns(
        small=[0.0 if r.escalated else r.score for r in rows],
        large=[r.score if r.escalated else assumed[r.route] for r in rows],
        small_cost=[r.small_cost for r in rows],
        large_cost=[r.large_cost for r in rows],
    )
    by_route: dict[str, list[int]] = {}
    for index, record in enumerate(rows):
        by_route.setdefault(record.route, []).append(index)
    groups = {k: v for k, v in sorted(by_route.items()) if len(v) >= min_route_records}
    return FeedbackOutcomes(
        columns=columns,
        scores=[r.confidence for r in rows],
        small_known=[not r.escalated for r in rows],
        groups=groups,
        large_quality=assumed,
        fallback_routes=sorted(set(by_route) - set(groups)),
    )


def fit_learned_from_feedback(
    signals: Sequence[dict[str, float] | None],
    scores: Sequence[float],
    escalated: Sequence[bool],
    *,
    quantile: float = 0.1,
    first_k: int = 8,
) -> LearnedSignal:
    """The learned signal (logistic regression over the other signals) fitted on feedback.

    Only accepted answers with recorded signals are used: there the feedback judges the small
    answer (score >= 0.5 counts as good); on escalated ones it judges the large answer. The
    fit therefore sees only answers the policy in force accepted (with a threshold of 0, all).
    `quantile` and `first_k` must be the settings the signals were computed with.
    """
    picked = [
        (features, score >= 0.5)
        for features, score, up in zip(signals, scores, escalated, strict=True)
        if features is not None and not up
    ]
    labels = {good for _, good in picked}
    if len(labels) < 2:
        raise FeedbackError(
            f"the learned signal needs accepted answers judged both right and wrong with their "
            f"signals recorded; found {len(picked)} accepted answer(s) with signals, "
            f"all {'right' if True in labels else 'wrong'}"
            if picked
            else "the learned signal needs ledger rows with signals (written since migration "
            "0006) and feedback on accepted answers; found none"
        )
    try:
        return LearnedSignal.fit_features(
            [f for f, _ in picked], [g for _, g in picked], quantile=quantile, first_k=first_k
        )
    except ValueError as error:
        raise FeedbackError(str(error)) from None
