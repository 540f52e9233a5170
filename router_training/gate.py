"""The ensemble's gate: answer from the cheap member alone when it is confident.

A gated ensemble scores every query with the TF-IDF (or hybrid) member first. When the
member's calibrated top probability (its logits over its own ensemble temperature) is at
least the gate threshold, that answer stands and the encoder never runs; the other queries
go to the encoder and are fused as in the plain ensemble. The threshold is chosen on the
held-out split for a ``GateTarget``:

- ``agreement>=V``: the smallest threshold whose routing decisions (label, or abstain) agree
  with the full ensemble's on at least ``V`` of the held-out queries, and on at least ``V`` of
  the held-out queries the full ensemble abstains on (``agreement>=V,abstain_agreement>=W``
  sets the second share apart). Abstentions are rare (1.5% of CLINC150's hold-out) and are
  where the member is weakest: a confident TF-IDF in-scope label on an out-of-scope query. An
  overall share alone would let the gate lose a fifth of them within 0.5% of disagreement.
  Agreement can only grow with the threshold (fewer gated queries), so the smallest passing
  threshold is the cheapest.
- ``encoder_fraction<=V``: the largest threshold that sends at most ``V`` of the held-out
  queries to the encoder.
- ``fixed=G``: the threshold is ``G``; ``none``: no gate (the encoder scores every query).
"""

from __future__ import annotations

import re
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from router_training.calibration import abstentions

__all__ = [
    "ABSTAIN",
    "GateTarget",
    "choose_gate",
    "decisions",
    "gate_stats",
    "parse_gate_target",
]

ABSTAIN = -1
_SPEC = re.compile(r"^\s*(agreement|encoder_fraction|fixed)\s*(>=|<=|=)\s*([0-9.]+)\s*$")
_ABSTAIN_SPEC = re.compile(r"^\s*abstain_agreement\s*>=\s*([0-9.]+)\s*$")
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
    abstain_value: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="agreement only: the share of the full ensemble's held-out abstentions the "
        "gated decisions must keep; None: the same as `value`.",
    )

    def spec(self) -> str:
        if self.metric == "none":
            return "none"
        text = f"{self.metric}{_OPERATORS[self.metric]}{self.value:g}"
        if self.abstain_value is not None:
            text += f",abstain_agreement>={self.abstain_value:g}"
        return text

    @property
    def abstain_share(self) -> float:
        """The share of abstentions to keep (agreement targets)."""
        return self.value if self.abstain_value is None else self.abstain_value


def parse_gate_target(spec: str) -> GateTarget:
    """Parse ``agreement>=0.995`` (optionally ``,abstain_agreement>=0.9``),
    ``encoder_fraction<=0.3``, ``fixed=0.9`` or ``none``."""
    if spec.strip() == "none":
        return GateTarget(metric="none")
    head, _, tail = spec.partition(",")
    match = _SPEC.match(head)
    extra = _ABSTAIN_SPEC.match(tail) if tail else None
    if (
        match is None
        or match.group(2) != _OPERATORS[match.group(1)]
        or (tail and (extra is None or match.group(1) != "agreement"))
    ):
        raise ValueError(
            f"gate target {spec!r} not understood; use e.g. 'agreement>=0.995', "
            "'agreement>=0.995,abstain_agreement>=0.9', 'encoder_fraction<=0.3', 'fixed=0.9' "
            "or 'none'"
        )
    values = [float(match.group(3)), *([float(extra.group(1))] if extra else [])]
    if not all(0.0 <= value <= 1.0 for value in values):
        raise ValueError(f"gate target {spec!r}: the values must be in [0, 1]")
    return GateTarget(
        metric=match.group(1),  # type: ignore[arg-type]
        value=values[0],
        abstain_value=values[1] if extra else None,
    )


def decisions(probs: np.ndarray, abstain_threshold: float, oos_index: int | None) -> np.ndarray:
    """Routing decision per row as ``LoadedRouter`` makes it: the top label's index, or
    ``ABSTAIN`` (-1) when the top label is out-of-scope or its probability is below the
    abstain threshold."""
    top, abstained = abstentions(probs, abstain_threshold, oos_index)
    return np.where(abstained, ABSTAIN, top)


def choose_gate(
    confidence: np.ndarray, agrees: np.ndarray, abstains: np.ndarray, target: GateTarget
) -> float | None:
    """The gate threshold for ``target``; None means no gate (the encoder scores everything).

    Per held-out row: ``confidence``, the member's calibrated top probability; ``agrees``, the
    member's decision equals the full ensemble's; ``abstains``, the full ensemble abstains. A
    threshold ``g`` gates the rows with ``confidence >= g``; candidates are the held-out
    confidences themselves.
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
    allowed_abstain = (1.0 - target.abstain_share) * int(abstains.sum()) + 1e-9
    for candidate in candidates:
        lost = ~agrees & (confidence >= candidate)
        if (
            np.count_nonzero(lost) <= allowed
            and np.count_nonzero(lost & abstains) <= allowed_abstain
        ):
            return float(candidate)
    return None


def gate_stats(
    confidence: np.ndarray, agrees: np.ndarray, abstains: np.ndarray, gate: float | None
) -> dict[str, float | None]:
    """Held-out agreement with the full ensemble (on all rows and on its abstentions) and the
    share of queries the encoder scores."""
    gated = confidence >= gate if gate is not None else np.zeros(len(confidence), bool)
    kept = agrees | ~gated
    return {
        "holdout_agreement": float(np.mean(kept)),
        "holdout_abstain_agreement": float(np.mean(kept[abstains])) if abstains.any() else None,
        "holdout_encoder_fraction": float(np.mean(~gated)),
    }
