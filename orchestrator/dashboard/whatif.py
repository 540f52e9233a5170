"""What-if: the escalation rate, cost and quality a route would have had at another threshold,
projected from the logged confidences (bins of width 0.01) of its small-model answers.

For a query with small-model confidence c, threshold t escalates it when c < t. Its projected
cost is what the small attempt cost plus, if escalated, the always-large baseline cost (the
large attempt's real cost when it ran, otherwise the large model's price for the same usage,
see `cascade.pricing.query_cost`). Queries of the route without a small-model confidence
(asked for the large model directly, skipped as predicted hard, failed before answering) keep
their logged cost and escalation.

Quality comes from feedback scores (0..1): an answer the projection would take from the small
model counts with the mean score of small answers in its confidence bin, an escalated one with
the mean score of large answers in its bin; a bin without such feedback falls back to the
route's mean for that model. `quality_coverage` is the share of queries whose own bin had
feedback for the model the projection picks. Without any feedback, quality is None.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.ledger.rollup import CONFIDENCE_BINS


@dataclass
class RouteBins:
    """Per confidence bin sums for one route (lists of length CONFIDENCE_BINS)."""

    queries: list[int] = field(default_factory=lambda: [0] * CONFIDENCE_BINS)
    escalated: list[int] = field(default_factory=lambda: [0] * CONFIDENCE_BINS)
    cost: list[float] = field(default_factory=lambda: [0.0] * CONFIDENCE_BINS)  # as logged
    cost_small: list[float] = field(default_factory=lambda: [0.0] * CONFIDENCE_BINS)
    baseline: list[float] = field(default_factory=lambda: [0.0] * CONFIDENCE_BINS)
    fb_small_n: list[int] = field(default_factory=lambda: [0] * CONFIDENCE_BINS)
    fb_small_score: list[float] = field(default_factory=lambda: [0.0] * CONFIDENCE_BINS)
    fb_large_n: list[int] = field(default_factory=lambda: [0] * CONFIDENCE_BINS)
    fb_large_score: list[float] = field(default_factory=lambda: [0.0] * CONFIDENCE_BINS)


@dataclass(frozen=True)
class Fixed:
    """The route's queries the threshold does not affect (no small-model confidence)."""

    queries: int = 0
    escalated: int = 0
    cost: float = 0.0


@dataclass(frozen=True)
class Projection:
    threshold: float
    queries: int
    escalated: int
    escalation_rate: float | None
    cost_usd: float
    quality: float | None
    quality_coverage: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "threshold": self.threshold,
            "queries": self.queries,
            "escalated": self.escalated,
            "escalation_rate": self.escalation_rate,
            "cost_usd": round(self.cost_usd, 10),
            "quality": self.quality,
            "quality_coverage": self.quality_coverage,
        }


def threshold_bin(threshold: float) -> int:
    """Thresholds are projected at bin resolution: t escalates bins below round(t * 100)."""
    return max(0, min(CONFIDENCE_BINS, round(threshold * CONFIDENCE_BINS)))


def _mean(total: float, count: int) -> float | None:
    return total / count if count else None


def project(bins: RouteBins, fixed: Fixed, threshold: float) -> Projection:
    cut = threshold_bin(threshold)
    with_confidence = sum(bins.queries)
    queries = with_confidence + fixed.queries
    escalated = sum(bins.queries[:cut]) + fixed.escalated
    cost = sum(bins.cost_small) + sum(bins.baseline[:cut]) + fixed.cost
    quality, coverage = _quality(bins, cut)
    return Projection(
        threshold=cut / CONFIDENCE_BINS,
        queries=queries,
        escalated=escalated,
        escalation_rate=escalated / queries if queries else None,
        cost_usd=cost,
        quality=quality,
        quality_coverage=coverage,
    )


def _quality(bins: RouteBins, cut: int) -> tuple[float | None, float | None]:
    small_mean = _mean(sum(bins.fb_small_score), sum(bins.fb_small_n))
    large_mean = _mean(sum(bins.fb_large_score), sum(bins.fb_large_n))
    if small_mean is None and large_mean is None:
        return None, None
    weighted = weight = covered = 0.0
    for b, count in enumerate(bins.queries):
        if not count:
            continue
        if b < cut:
            own, fallback = _mean(bins.fb_large_score[b], bins.fb_large_n[b]), large_mean
        else:
            own, fallback = _mean(bins.fb_small_score[b], bins.fb_small_n[b]), small_mean
        score = own if own is not None else fallback
        covered += count if own is not None else 0
        if score is not None:
            weighted += score * count
            weight += count
    total = sum(bins.queries)
    return (weighted / weight if weight else None), (covered / total if total else None)


def curve(bins: RouteBins, fixed: Fixed) -> list[dict[str, float | int | None]]:
    """The projection at every bin edge 0.00, 0.01, ..., 1.00."""
    return [project(bins, fixed, k / CONFIDENCE_BINS).as_dict() for k in range(CONFIDENCE_BINS + 1)]
