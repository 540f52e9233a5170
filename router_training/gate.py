"""The ensemble's gate: answer from the cheap member alone when it is confident.

A gated ensemble scores every query with the TF-IDF (or hybrid) member first. When the
member's calibrated top probability (its logits over its own ensemble temperature) is at
least the gate threshold, that answer stands and the encoder never runs; the other queries
go to the encoder and are fused as in the plain ensemble. The threshold is chosen on the
held-out split for a ``GateTarget``:

- ``agreement>=V``: the smallest threshold whose routing decisions (label, or abstain) agree
  with the full ensemble's on at least ``V`` of the held-out queries. Agreement can only grow
  with the threshold (fewer gated queries), so the smallest passing one is the cheapest.
- ``encoder_fraction<=V``: the largest threshold that sends at most ``V`` of the held-out
  queries to the encoder.
- ``fixed=G``: the threshold is ``G``; ``none``: no gate (the encoder scores every query).
"""

from __future__ import annotations

import re
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "GateTarget",
    "choose_gate",
    "decisions",
    "gate_stats",
    "parse_gate_target",
]

ABSTAIN = -1
_SPEC = re.compile(r"^\s*(agreement|encoder_fraction|fixed)\s*(>=|<=|=)\s*([0-9.]+)\s*$")
_OPERATORS = {"agreement": ">=", "encoder_fraction": "<=", "fixed": "="}


class GateTarget(BaseModel):
    """What the gate threshold is chosen for, on the held-out split."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Literal["agreement", "encoder_fraction", "fixed", "none"] = Field(
        description="agreement: smallest threshold whose decisions agree with the full "
        "ensemble's on at least `value` of held-out queries; encoder_fraction: largest "
        "threshold sending at most `value` of them to the encoder; fixed: the threshold is "
        "`value`; none: no gate."
    )
    value: float = Field(0.0, ge=0.0, le=1.0, description="The target (or fixed threshold).")

    def spec(self) -> str:
        if self.metric == "none":
            return "none"
        return f"{self.metric}{_OPERATORS[self.metric]}{self.value:g}"


def parse_gate_target(spec: str) -> GateTarget:
    """Parse ``agreement>=0.995``, ``encoder_fraction<=0.3``, ``fixed=0.9`` or ``none``."""
    if spec.strip() == "none":
        return GateTarget(metric="none")
    match = _SPEC.match(spec)
    if match is None or match.group(2) != _OPERATORS[match.group(1)]:
        raise ValueError(
            f"gate target {spec!r} not understood; use e.g. 'agreement>=0.995', "
            "'encoder_fraction<=0.3', 'fixed=0.9' or 'none'"
        )
    value = float(match.group(3))
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"gate target {spec!r}: the value must be in [0, 1]")
    return GateTarget(metric=match.group(1), value=value)  # type: ignore[arg-type]


def decisions(probs: np.ndarray, abstain_threshold: float, oos_index: int | None) -> np.ndarray:
    """Routing decision per row as ``LoadedRouter`` makes it: the top label's index, or
    ``ABSTAIN`` (-1) when the top label is out-of-scope or its probability is below the
    abstain threshold."""
    top = probs.argmax(axis=1)
    abstained = probs.max(axis=1) < abstain_threshold
    if oos_index is not None:
        abstained |= top == oos_index
    return np.where(abstained, ABSTAIN, top)


def choose_gate(confidence: np.ndarray, agrees: np.ndarray, target: GateTarget) -> float | None:
    """The gate threshold for ``target``; None means no gate (the encoder scores everything).

    ``confidence``: the member's calibrated top probability per held-out row; ``agrees``: the
    member's decision equals the full ensemble's on that row. A threshold ``g`` gates the
    rows with ``confidence >= g``; candidates are the held-out confidences themselves.
    """
    if target.metric == "none":
        return None
    if target.metric == "fixed":
        return target.value
    candidates = np.unique(confidence)  # ascending
    if target.metric == "encoder_fraction":
        if target.value >= 1.0:
            return None
        fractions = np.searchsorted(np.sort(confidence), candidates, side="left") / len(confidence)
        passing = candidates[fractions <= target.value]
        return float(passing[-1]) if passing.size else None
    allowed = (1.0 - target.value) * len(confidence) + 1e-9
    for candidate in candidates:
        if np.count_nonzero(~agrees & (confidence >= candidate)) <= allowed:
            return float(candidate)
    return None


def gate_stats(confidence: np.ndarray, agrees: np.ndarray, gate: float | None) -> dict[str, float]:
    """Held-out agreement with the full ensemble and the share of queries the encoder scores."""
    gated = confidence >= gate if gate is not None else np.zeros(len(confidence), bool)
    return {
        "holdout_agreement": float(np.mean(agrees | ~gated)),
        "holdout_encoder_fraction": float(np.mean(~gated)),
    }
