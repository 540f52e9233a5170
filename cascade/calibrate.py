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
    "learnable_floor",
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


def learnable_floor(scores: Sequence[float], small_known: Sequence[bool] | None) -> float | None:
    """The highest score of a record whose small-model correctness is unknown (None: none).

    A threshold t is learnable only if every answer it keeps (score >= t) has a known small
    correctness, i.e. t > this floor. Ledger feedback on escalated queries judged the large
    model's answer, so the small answer's quality there is unknown.
    """
    if small_known is None:
        return None
    unknown = [s for s, known in zip(scores, small_known, strict=True) if not known]
    return max(unknown) if unknown else None


def choose_threshold(
    columns: OutcomeColumns,
    scores: Sequence[float],
    target: Target,
    *,
    mode: Mode = "cascade",
    small_known: Sequence[bool] | None = None,
) -> RouteCalibration:
    """The threshold that meets ``target`` on these records, chosen as described above.

    With ``small_known`` (per record), only thresholds above ``learnable_floor`` are candidates.
    """
    curve = deferral_curve(
        columns.small, columns.large, scores, columns.small_cost, columns.large_cost, mode=mode
    )
    quality_large = curve[-1].quality
    floor = learnable_floor(scores, small_known)
    candidates = [
        p for p in curve if p.threshold is not None and (floor is None or p.threshold > floor)
    ]
    feasible = [p for p in candidates if target.met_by(p, quality_large)]
    if not feasible:
        cheapest = min(1000 * p.cost_per_query for p in candidates)
        learnable = "" if floor is None else f"; thresholds <= {floor:.6g} are not learnable"
        raise CalibrationError(
            f"no threshold meets {target} on {len(scores)} records "
            f"(cheapest point costs {cheapest:.6g} USD per 1k queries; best quality "
            f"{max(p.quality for p in candidates):.4g} vs large {quality_large:.4g}{learnable})"
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
    base: CascadePolicy | None = None
    """The policy the scores were computed with (e.g. the serving config's): a route whose base
    uses the same signal keeps its other settings (first_k, quantile, learned coefficients)."""

    def route_policy(self, calibration: RouteCalibration, route: str | None = None) -> RoutePolicy:
        """In ``route`` mode the score is a difficulty router's: the threshold is ``skip_below``
        and nothing is escalated after generation (threshold 0)."""
        if self.mode == "route":
            return RoutePolicy(threshold=0.0, skip_below=calibration.threshold)
        if self.base is not None:
            base = self.base.default if route is None else self.base.for_route(route)
            if base.signal.value == self.signal:
                return base.model_copy(update={"threshold": calibration.threshold})
        return RoutePolicy(signal=Signal(self.signal), threshold=calibration.threshold)

    def policy(self) -> CascadePolicy:
        return CascadePolicy(
            default=self.route_policy(self.default),
            routes={name: self.route_policy(c, name) for name, c in self.routes.items()},
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
    small_known: Sequence[bool] | None = None,
) -> Calibration:
    """Fit a threshold per route in ``groups`` (name -> record indices) and a default.

    The default is fitted on all records, except when some records have a route and some
    do not (group ``""``): then it is fitted on the route-less ones, which it will govern.
    ``small_known`` (per record) restricts each fit to learnable thresholds
    (``learnable_floor``).
    """
    groups = groups or {}
    named = {name: idx for name, idx in groups.items() if name}
    unrouted = groups.get("", [])

    def fit(indices: Sequence[int]) -> RouteCalibration:
        known = None if small_known is None else [small_known[i] for i in indices]
        subset = columns.subset(indices)
        return choose_threshold(
            subset, [scores[i] for i in indices], target, mode=mode, small_known=known
        )

    default = fit(unrouted if named and unrouted else range(len(scores)))
    small = sorted(name for name, idx in named.items() if len(idx) < min_route_records)
    routes = {name: fit(indices) for name, indices in named.items() if name not in small}
    if small:
        shared = fit(sorted(i for name in small for i in named[name]))
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
