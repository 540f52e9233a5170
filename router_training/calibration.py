"""Temperature scaling, abstain-threshold selection and calibration error (pure numpy/scipy)."""

from __future__ import annotations

import itertools
import re
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AbstainTarget",
    "abstentions",
    "calibrate",
    "choose_threshold",
    "expected_calibration_error",
    "fit_temperature",
    "parse_abstain_target",
    "softmax",
]


class AbstainTarget(BaseModel):
    """What the abstain threshold is chosen for, on validation data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Literal["oos_recall", "accepted_accuracy", "abstain_rate", "fixed", "none"] = Field(
        description="oos_recall: smallest threshold whose out-of-scope recall reaches `value`; "
        "accepted_accuracy: smallest threshold whose accuracy on accepted in-scope queries "
        "reaches `value`; abstain_rate: largest threshold abstaining on at most `value` of "
        "in-scope queries; fixed: the threshold is `value`; none: never abstain on probability."
    )
    value: float = Field(0.0, ge=0.0, le=1.0, description="The target (or fixed threshold).")

    def spec(self) -> str:
        if self.metric == "none":
            return "none"
        op = {"oos_recall": ">=", "accepted_accuracy": ">=", "abstain_rate": "<=", "fixed": "="}
        return f"{self.metric}{op[self.metric]}{self.value:g}"


_SPEC = re.compile(r"^\s*(oos_recall|accepted_accuracy|abstain_rate|fixed)\s*(>=|<=|=)\s*([0-9.]+)")


def parse_abstain_target(spec: str, *, has_out_of_scope: bool) -> AbstainTarget:
    """Parse ``oos_recall>=0.8``, ``accepted_accuracy>=0.95``, ``abstain_rate<=0.05``,
    ``fixed=0.5``, ``none`` or ``auto`` (= ``abstain_rate<=0.02``).

    ``auto`` does not target out-of-scope recall even when out-of-scope rows exist: a held-out
    split has few of them (10 in CLINC150's train), so the threshold for an oos_recall target
    swings with the split (0.745 vs 0.514 for TF-IDF, split seeds 0 and 1) while the in-scope
    abstain rate is estimated from every in-scope row (0.651 vs 0.556)."""
    if spec == "auto":
        spec = "abstain_rate<=0.02"
    if spec == "none":
        return AbstainTarget(metric="none", value=0.0)
    match = _SPEC.match(spec)
    if match is None:
        raise ValueError(
            f"abstain target {spec!r} not understood; use e.g. 'oos_recall>=0.8', "
            "'accepted_accuracy>=0.95', 'abstain_rate<=0.05', 'fixed=0.5', 'none' or 'auto'"
        )
    metric, _, value = match.groups()
    if metric == "oos_recall" and not has_out_of_scope:
        raise ValueError("abstain target oos_recall needs out-of-scope rows in validation data")
    return AbstainTarget(metric=metric, value=float(value))  # type: ignore[arg-type]


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=-1, keepdims=True)  # type: ignore[no-any-return]


def abstentions(
    probs: np.ndarray, threshold: float, oos_index: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the top label's index, and whether the router abstains (the top label is
    out-of-scope, or its probability is below the abstain threshold), as ``LoadedRouter``
    decides."""
    top = probs.argmax(axis=1)
    abstained = probs.max(axis=1) < threshold
    if oos_index is not None:
        abstained |= top == oos_index
    return top, abstained


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature minimising validation negative log-likelihood (searched on log T).

    With no validation errors the likelihood keeps rising as T shrinks, which would sharpen
    every probability to 0/1; then the temperature is not allowed below 1.
    """
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)

    def nll(log_t: float) -> float:
        probs = softmax(logits, float(np.exp(log_t)))
        return float(-np.log(probs[np.arange(len(targets)), targets] + 1e-12).mean())

    result = minimize_scalar(nll, bounds=(np.log(0.25), np.log(20.0)), method="bounded")
    temperature = float(np.exp(result.x))
    if (logits.argmax(axis=1) == targets).all():
        temperature = max(temperature, 1.0)
    return temperature


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE with equal-width confidence bins."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == targets
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for low, high in itertools.pairwise(edges):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def choose_threshold(
    probs: np.ndarray, targets: np.ndarray, oos_index: int | None, target: AbstainTarget
) -> float:
    """Pick the abstain threshold on calibrated validation probabilities for ``target``."""
    if target.metric == "none":
        return 0.0
    if target.metric == "fixed":
        return target.value
    top = probs.max(axis=1)
    predicted = probs.argmax(axis=1)
    in_scope = targets != oos_index if oos_index is not None else np.ones(len(targets), bool)
    candidates = np.unique(np.concatenate([[0.0], top]))
    # A threshold t abstains on rows whose top probability is below t; candidates sit just
    # above each observed probability so "<" flips exactly one group at a time.
    candidates = np.unique(np.concatenate([[0.0], np.nextafter(candidates, 2.0)]))
    predicted_oos = predicted == oos_index if oos_index is not None else np.zeros_like(in_scope)
    if target.metric == "oos_recall":
        oos_top = top[~in_scope]
        oos_pred = predicted_oos[~in_scope]
        for threshold in candidates:
            if ((oos_top < threshold) | oos_pred).mean() >= target.value:
                return float(min(threshold, 1.0))
        return 1.0
    if target.metric == "accepted_accuracy":
        correct = (predicted == targets)[in_scope]
        scope_top = top[in_scope]
        for threshold in candidates:
            accepted = scope_top >= threshold
            if not accepted.any() or correct[accepted].mean() >= target.value:
                return float(min(threshold, 1.0))
        return 1.0
    # abstain_rate: the largest threshold abstaining on at most `value` of in-scope rows.
    scope_top = np.sort(top[in_scope])
    allowed = int(np.floor(target.value * len(scope_top)))
    if allowed >= len(scope_top):
        return 1.0
    return float(scope_top[allowed])


def calibrate(
    val_logits: np.ndarray, y_val: np.ndarray, oos_index: int | None, abstain_target: str
) -> tuple[float, float, AbstainTarget]:
    """Temperature, abstain threshold and the parsed ``AbstainTarget`` of held-out logits."""
    temperature = fit_temperature(val_logits, y_val)
    probs = softmax(np.asarray(val_logits, np.float64), temperature)
    has_oos = oos_index is not None and bool((y_val == oos_index).any())
    target = parse_abstain_target(abstain_target, has_out_of_scope=has_oos)
    return temperature, choose_threshold(probs, y_val, oos_index, target), target
