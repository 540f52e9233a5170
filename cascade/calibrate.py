"""Choose thresholds for a target, per route, from outcome data.

Targets (``parse_target``):

* ``quality=X``: keep quality >= X times the large model's quality on the same queries; the
  cheapest such threshold (fewest escalations) wins.
* ``escalation=Y``: send at most a share Y of queries to the large model; the best quality
  among those thresholds wins (ties: fewer escalations).
* ``cost=Z``: spend at most Z USD per 1,000 queries; the best quality among those wins.

Every target is an average over queries, so a threshold per route that meets it on each
route's records meets it on all records together. Routes with fewer than
``min_route_records`` records are pooled and share one threshold; the default (for routes the
data never saw) is fitted on all records. Per-route fitting is not the global optimum (that
would equalise the marginal quality per escalation across routes), but it is predictable and
each route's numbers can be read on their own.

The result converts to a ``CascadePolicy`` and to a plain dict (``Calibration.to_dict``) that
the CLI writes as the thresholds file; ``policy_from_file_data`` reads it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cascade.confidence import Signal
from cascade.evaluate import CurvePoint, Mode, deferral_curve
from cascade.outcomes import OutcomeColumns
from cascade.policy import CascadePolicy, RoutePolicy

__all__ = [
    "Calibration",
    "CalibrationError",
    "RouteCalibration",
    "Target",
    "calibrate",
    "choose_threshold",
    "escalations",
    "parse_target",
    "policy_from_file_data",
]

POOLED = "*pooled*"
"""Group name of the records of routes too small to be fitted on their own."""


class CalibrationError(ValueError):
    """No threshold meets the target on this data (the message says what is achievable)."""


class Target(BaseModel):
    """What the thresholds must achieve."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["quality", "escalation", "cost"] = Field(
        description="quality: share of the large model's quality kept; escalation: largest "
        "share sent to the large model; cost: USD per 1,000 queries at most."
    )
    value: float = Field(ge=0.0, description="The target's number.")

    def met_by(self, point: CurvePoint, quality_large: float) -> bool:
        if self.kind == "quality":
            return point.quality >= self.value * quality_large - 1e-12
        if self.kind == "escalation":
            return point.share_large <= self.value + 1e-12
        return 1000 * point.cost_per_query <= self.value + 1e-12

    def __str__(self) -> str:
        return f"{self.kind}={self.value:g}"


def parse_target(text: str) -> Target:
    """``quality=0.95``, ``escalation=0.3`` or ``cost=1.5`` (USD per 1k queries)."""
    kind, sep, number = text.partition("=")
    kinds = ("quality", "escalation", "cost")
    if not sep or kind.strip() not in kinds:
        raise ValueError(f"target {text!r} must look like quality=0.95, escalation=0.3 or cost=2")
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"target {text!r}: {number!r} is not a number") from None
    if kind.strip() in ("quality", "escalation") and not 0.0 <= value <= 1.0:
        raise ValueError(f"target {text!r}: {kind} is a share and must be in [0, 1]")
    if value < 0:
        raise ValueError(f"target {text!r}: cost must be >= 0")
    return Target(kind=kind.strip(), value=value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RouteCalibration:
    """The chosen threshold of one route and what it is expected to do (on the fitted data)."""

    threshold: float
    records: int
    escalation_rate: float
    quality: float
    quality_small: float
    quality_large: float
    cost_per_1k: float
    cost_per_1k_always_large: float

    @property
    def quality_vs_large(self) -> float | None:
        return self.quality / self.quality_large if self.quality_large > 0 else None


def _best(points: list[CurvePoint], target: Target) -> CurvePoint:
    if target.kind == "quality":
        return points[0]  # the curve is ordered by escalations: first is cheapest
    return max(points, key=lambda p: (round(p.quality, 12), -p.share_large))


def choose_threshold(
    columns: OutcomeColumns, scores: Sequence[float], target: Target, *, mode: Mode = "cascade"
) -> RouteCalibration:
    """The threshold that meets ``target`` on these records, chosen as described above."""
    curve = deferral_curve(
        columns.small, columns.large, scores, columns.small_cost, columns.large_cost, mode=mode
    )
    quality_large = curve[-1].quality
    feasible = [p for p in curve if p.threshold is not None and target.met_by(p, quality_large)]
    if not feasible:
        cheapest = min(1000 * p.cost_per_query for p in curve)
        raise CalibrationError(
            f"no threshold meets {target} on {len(scores)} records "
            f"(cheapest point costs {cheapest:.6g} USD per 1k queries; best quality "
            f"{max(p.quality for p in curve):.4g} vs large {quality_large:.4g})"
        )
    point = _best(feasible, target)
    assert point.threshold is not None
    return RouteCalibration(
        threshold=point.threshold,
        records=len(scores),
        escalation_rate=point.share_large,
        quality=point.quality,
        quality_small=curve[0].quality,
        quality_large=quality_large,
        cost_per_1k=1000 * point.cost_per_query,
        cost_per_1k_always_large=1000 * sum(columns.large_cost) / len(scores),
    )


@dataclass(frozen=True)
class Calibration:
    """Thresholds for a target: a default and one per route, with expected numbers."""

    target: Target
    mode: str
    signal: str
    default: RouteCalibration
    routes: dict[str, RouteCalibration]

    def route_policy(self, calibration: RouteCalibration) -> RoutePolicy:
        """In ``route`` mode the score is a difficulty router's: the threshold is ``skip_below``
        and nothing is escalated after generation (threshold 0)."""
        if self.mode == "route":
            return RoutePolicy(threshold=0.0, skip_below=calibration.threshold)
        return RoutePolicy(signal=Signal(self.signal), threshold=calibration.threshold)

    def policy(self) -> CascadePolicy:
        return CascadePolicy(
            default=self.route_policy(self.default),
            routes={name: self.route_policy(c) for name, c in self.routes.items()},
        )

    def to_dict(self, source: dict[str, Any] | None = None) -> dict[str, Any]:
        """The thresholds file: ``policy`` (a CascadePolicy) and ``calibration`` (expectations)."""

        def expected(c: RouteCalibration) -> dict[str, Any]:
            return {**asdict(c), "quality_vs_large": c.quality_vs_large}

        return {
            "policy": self.policy().model_dump(mode="json", exclude_defaults=True),
            "calibration": {
                "target": {"kind": self.target.kind, "value": self.target.value},
                "mode": self.mode,
                "signal": self.signal,
                "source": source or {},
                "default": expected(self.default),
                "routes": {name: expected(c) for name, c in self.routes.items()},
            },
        }


def calibrate(
    columns: OutcomeColumns,
    scores: Sequence[float],
    target: Target,
    *,
    groups: dict[str, list[int]] | None = None,
    mode: Mode = "cascade",
    signal: Signal | str = Signal.mean_prob,
    min_route_records: int = 50,
) -> Calibration:
    """Fit a threshold per route in ``groups`` (name -> record indices) and a default.

    The default is fitted on all records, except when some records have a route and some
    do not (group ``""``): then it is fitted on the route-less ones, which it will govern.
    """
    groups = groups or {}
    named = {name: idx for name, idx in groups.items() if name}
    unrouted = groups.get("", [])
    fit_default = unrouted if named and unrouted else range(len(scores))
    default = choose_threshold(
        columns.subset(fit_default), [scores[i] for i in fit_default], target, mode=mode
    )
    small = sorted(name for name, idx in named.items() if len(idx) < min_route_records)
    routes: dict[str, RouteCalibration] = {}
    for name, indices in named.items():
        if name not in small:
            subset = columns.subset(indices)
            routes[name] = choose_threshold(subset, [scores[i] for i in indices], target, mode=mode)
    if small:
        pooled = sorted(i for name in small for i in named[name])
        shared = choose_threshold(
            columns.subset(pooled), [scores[i] for i in pooled], target, mode=mode
        )
        routes.update(dict.fromkeys(small, shared))
    return Calibration(
        target=target, mode=mode, signal=str(Signal(signal)), default=default, routes=routes
    )


def policy_from_file_data(data: dict[str, Any]) -> CascadePolicy:
    """The ``CascadePolicy`` in a thresholds file written by ``spillway cascade calibrate``."""
    if not isinstance(data, dict) or "policy" not in data:
        raise ValueError("a thresholds file is a mapping with a `policy` key")
    return CascadePolicy.model_validate(data["policy"])


def escalations(
    policy: CascadePolicy,
    scores: Sequence[float],
    routes: Sequence[str | None],
    *,
    mode: Mode = "cascade",
) -> list[bool]:
    """Which records the policy sends to the large model, given each record's score and route.

    In ``cascade`` mode a score is the confidence and the route's ``threshold`` applies; in
    ``route`` mode it is the difficulty router's probability and ``skip_below`` applies.
    """
    decisions = []
    for score, route in zip(scores, routes, strict=True):
        route_policy = policy.for_route(route or "")
        if mode == "route":
            cut = route_policy.skip_below
            decisions.append(cut is not None and score < cut)
        else:
            decisions.append(score < route_policy.threshold)
    return decisions
