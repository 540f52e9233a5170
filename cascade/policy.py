"""Per-route thresholds -> accept the small model's answer or escalate, with the reason.

Decision reasons (short, stable, snake_case; the ledger and the API expose them):

* ``confident`` -- the small answer's confidence is at or above the route's threshold: accept.
* ``low_confidence`` -- the confidence is below the threshold (empty answers score 0.0):
  escalate to the large model.
* ``predicted_hard`` -- only from ``decide_before_generation``: the difficulty scorer's
  probability that the small model suffices is below the route's ``skip_below``, so the query
  goes straight to the large model and no small attempt is spent on it.

The rule is ``escalate = confidence < threshold``. Every signal is strictly below 1.0 for any
non-empty answer (see ``cascade.confidence``), so a threshold of 1.0 escalates every answer and a
threshold of 0.0 accepts every answer.

Streams: with ``stream_decide_after_tokens: k`` the service decides on the first k tokens'
log-probabilities (the route's signal over them) and starts streaming an accepted answer
before the small model finishes. With ``signal: first_k`` and ``first_k <= k`` that is the
same decision as on the whole answer. The trade-off: the first tokens say less about the whole
answer than all of them, so at the same escalation rate the quality kept is usually lower.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cascade.confidence import LearnedSignal, Signal, compute_confidence

__all__ = [
    "REASON_CONFIDENT",
    "REASON_LOW_CONFIDENCE",
    "REASON_PREDICTED_HARD",
    "CascadePolicy",
    "Decision",
    "RoutePolicy",
    "decide",
    "decide_before_generation",
]

REASON_CONFIDENT = "confident"
REASON_LOW_CONFIDENCE = "low_confidence"
REASON_PREDICTED_HARD = "predicted_hard"

DIFFICULTY_SIGNAL = "difficulty"
"""The ``signal`` a pre-generation decision reports."""


class RoutePolicy(BaseModel):
    """How one route (adapter) decides whether to keep the small model's answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    signal: Signal = Field(
        default=Signal.mean_prob,
        description="Confidence signal computed from the answer's token log-probabilities.",
    )
    threshold: float = Field(
        ge=0.0,
        le=1.0,
        description="Escalate when the confidence is below this; 1.0 escalates every answer, "
        "0.0 none.",
    )
    quantile: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Which quantile of token probabilities the `quantile` signal uses.",
    )
    first_k: int = Field(
        default=8, ge=1, description="How many leading tokens the `first_k` signal looks at."
    )
    learned: LearnedSignal | None = Field(
        default=None,
        description="Fitted coefficients for `signal: learned` (required then, unused otherwise).",
    )
    stream_decide_after_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Streams only: decide on the first k tokens (this route's signal over "
        "them), so an accepted answer streams before the small model finishes; None holds the "
        "whole answer. With signal first_k and k >= first_k the decision equals the unstreamed "
        "one.",
    )
    skip_below: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Optional pre-generation skip: if the difficulty scorer's probability that "
        "the small model suffices is below this, go straight to the large model.",
    )

    @model_validator(mode="after")
    def _learned_matches_signal(self) -> RoutePolicy:
        if self.signal is Signal.learned and self.learned is None:
            raise ValueError("signal 'learned' needs `learned` coefficients (LearnedSignal)")
        if self.signal is not Signal.learned and self.learned is not None:
            raise ValueError(f"`learned` is only used with signal 'learned', not '{self.signal}'")
        return self

    def confidence(self, logprobs: Sequence[float]) -> float:
        """This route's confidence for an answer with these token log-probabilities."""
        if self.learned is not None:
            return self.learned.score(logprobs)
        return compute_confidence(
            logprobs, self.signal, quantile=self.quantile, first_k=self.first_k
        )


class CascadePolicy(BaseModel):
    """The cascade's policy: a default route policy and optional per-route replacements."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: RoutePolicy = Field(description="Policy for routes without their own entry.")
    routes: dict[str, RoutePolicy] = Field(
        default_factory=dict,
        description="Per-route (adapter name) policies; each replaces the default entirely.",
    )

    def for_route(self, route: str) -> RoutePolicy:
        """The route's own policy, or the default."""
        return self.routes.get(route, self.default)


@dataclass(frozen=True)
class Decision:
    """Whether to escalate, and why: which signal, its value, and the threshold it met."""

    escalate: bool
    reason: str
    signal: str
    confidence: float
    threshold: float


def decide(policy: CascadePolicy, route: str, logprobs: Sequence[float]) -> Decision:
    """Accept (``confident``) or escalate (``low_confidence``) a small-model answer."""
    route_policy = policy.for_route(route)
    confidence = route_policy.confidence(logprobs)
    escalate = confidence < route_policy.threshold
    return Decision(
        escalate=escalate,
        reason=REASON_LOW_CONFIDENCE if escalate else REASON_CONFIDENT,
        signal=route_policy.signal.value,
        confidence=confidence,
        threshold=route_policy.threshold,
    )


def decide_before_generation(
    policy: CascadePolicy, route: str, small_enough_probability: float | None
) -> Decision | None:
    """Pre-generation skip: a ``predicted_hard`` escalation, or None to try the small model.

    ``small_enough_probability`` is a difficulty scorer's probability that the small model's
    answer will be good enough (None when no scorer ran). Routes without ``skip_below`` never
    skip.
    """
    threshold = policy.for_route(route).skip_below
    if threshold is None or small_enough_probability is None:
        return None
    if not 0.0 <= small_enough_probability <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {small_enough_probability}")
    if small_enough_probability >= threshold:
        return None
    return Decision(
        escalate=True,
        reason=REASON_PREDICTED_HARD,
        signal=DIFFICULTY_SIGNAL,
        confidence=small_enough_probability,
        threshold=threshold,
    )
