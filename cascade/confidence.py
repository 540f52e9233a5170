"""Confidence of a small-model answer from its per-token log-probabilities.

Every signal maps the answer's token log-probabilities to a number in [0, 1]; higher means the
small model was surer of what it wrote. The policy (``cascade.policy``) compares it with a
threshold.

Two conventions hold for every signal:

* **Empty answers score 0.0.** An answer with no tokens carries no evidence that the small model
  knew the answer, and an empty reply is never a good one, so the safe choice is to escalate.
* **No token counts as certain.** vLLM computes log-softmax in float32, which rounds any
  probability within ~6e-8 of 1 to a log-probability of exactly 0.0 (and noise can make it
  slightly positive). Log-probabilities are therefore clamped to at most ``LOGPROB_CEILING``
  (-2**-24, a probability of 0.99999994): the engine cannot tell those tokens apart from certain
  ones anyway, and it keeps every confidence strictly below 1.0, so a threshold of 1.0 escalates
  every answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "FEATURE_NAMES",
    "LOGPROB_CEILING",
    "LearnedSignal",
    "Signal",
    "compute_confidence",
    "confidence_features",
]

LOGPROB_CEILING = -(2.0**-24)
"""Largest log-probability used: float32 cannot resolve probabilities closer to 1 than this."""


class Signal(StrEnum):
    """How token log-probabilities are turned into one confidence value."""

    mean_prob = "mean_prob"
    """Arithmetic mean of token probabilities (the seed's signal); biased by answer length."""
    geometric_mean = "geometric_mean"
    """exp(mean log-probability): the per-token probability of the whole sequence."""
    min_prob = "min_prob"
    """Probability of the least likely token: one unsure token sinks the answer."""
    quantile = "quantile"
    """A low quantile (default 10%) of token probabilities: min-like, less noisy."""
    first_k = "first_k"
    """Mean probability of the first k tokens only, so a stream can be decided early."""
    learned = "learned"
    """Logistic regression over the other signals, fitted on labelled outcomes."""


FEATURE_NAMES: tuple[str, ...] = tuple(s.value for s in Signal if s is not Signal.learned)
"""The features ``confidence_features`` returns, in a fixed order."""


def _probabilities(logprobs: Sequence[float]) -> list[float]:
    probs = []
    for lp in logprobs:
        value = float(lp)
        if math.isnan(value):
            raise ValueError("logprobs contain NaN; the engine returned no usable log-probability")
        probs.append(math.exp(min(value, LOGPROB_CEILING)))
    return probs


def _lower_quantile(sorted_probs: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default method) of already sorted values."""
    position = q * (len(sorted_probs) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_probs) - 1)
    fraction = position - low
    return sorted_probs[low] + (sorted_probs[high] - sorted_probs[low]) * fraction


def _check_params(quantile: float, first_k: int) -> None:
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    if first_k < 1:
        raise ValueError(f"first_k must be at least 1, got {first_k}")


def _geometric_mean(probs: list[float]) -> float:
    if min(probs) == 0.0:
        return 0.0
    return math.exp(math.fsum(math.log(p) for p in probs) / len(probs))


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def confidence_features(
    logprobs: Sequence[float], *, quantile: float = 0.1, first_k: int = 8
) -> dict[str, float]:
    """Every signal except ``learned``, keyed by signal name (see ``FEATURE_NAMES``).

    Empty ``logprobs`` give 0.0 for every feature (see the module docstring for why).
    """
    _check_params(quantile, first_k)
    probs = _probabilities(logprobs)
    if not probs:
        return dict.fromkeys(FEATURE_NAMES, 0.0)
    head = probs[:first_k]
    mean = _clip(math.fsum(probs) / len(probs))
    return {
        Signal.mean_prob.value: mean,
        # Jensen: geometric <= arithmetic; min() only removes a last-bit rounding difference.
        Signal.geometric_mean.value: min(mean, _clip(_geometric_mean(probs))),
        Signal.min_prob.value: min(probs),
        Signal.quantile.value: _clip(_lower_quantile(sorted(probs), quantile)),
        Signal.first_k.value: _clip(math.fsum(head) / len(head)),
    }


def compute_confidence(
    logprobs: Sequence[float],
    signal: Signal = Signal.mean_prob,
    *,
    quantile: float = 0.1,
    first_k: int = 8,
) -> float:
    """The confidence in [0, 1] of an answer with these token log-probabilities.

    An empty answer scores 0.0: there is no evidence the small model knew anything, and an
    empty reply is never acceptable, so the cascade should escalate it. ``Signal.learned``
    needs fitted coefficients: use ``LearnedSignal.score`` (or ``cascade.policy.decide``).
    """
    signal = Signal(signal)
    if signal is Signal.learned:
        raise ValueError(
            "Signal.learned needs a fitted model: call LearnedSignal.score(logprobs), "
            "or give the route policy its `learned` coefficients"
        )
    return confidence_features(logprobs, quantile=quantile, first_k=first_k)[signal.value]


class LearnedSignal(BaseModel):
    """A logistic regression over ``confidence_features``: P(small answer is good | features).

    Plain data (an intercept and one coefficient per feature), so a serve config or a
    calibrated thresholds file can hold it: ``LearnedSignal.from_dict(d)`` / ``.to_dict()``.
    Fit it with ``LearnedSignal.fit`` (needs scikit-learn, imported only then).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    intercept: float = Field(description="Logistic-regression intercept (log-odds).")
    coefficients: dict[str, float] = Field(
        description="Weight per feature; keys are feature names from FEATURE_NAMES."
    )
    quantile: float = Field(
        default=0.1, ge=0.0, le=1.0, description="Quantile used for the `quantile` feature."
    )
    first_k: int = Field(default=8, ge=1, description="Token count used for the `first_k` feature.")

    @field_validator("coefficients")
    @classmethod
    def _known_features(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(FEATURE_NAMES))
        if unknown:
            raise ValueError(f"unknown features {unknown}; known: {list(FEATURE_NAMES)}")
        return value

    def score(self, logprobs: Sequence[float]) -> float:
        """Probability in [0, 1] that the answer is good; empty answers score 0.0."""
        if len(logprobs) == 0:
            return 0.0
        return self.score_features(
            confidence_features(logprobs, quantile=self.quantile, first_k=self.first_k)
        )

    def score_features(self, features: dict[str, float]) -> float:
        """Score an already computed feature dict (as from ``confidence_features``)."""
        z = self.intercept + math.fsum(w * features[name] for name, w in self.coefficients.items())
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        ez = math.exp(z)
        return ez / (1.0 + ez)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LearnedSignal:
        return cls.model_validate(data)

    @classmethod
    def fit(
        cls,
        answers: Sequence[Sequence[float]],
        good: Sequence[bool],
        *,
        quantile: float = 0.1,
        first_k: int = 8,
        regularization: float = 1.0,
    ) -> LearnedSignal:
        """Fit on answers' logprobs and whether each answer was good enough (both classes needed).

        ``regularization`` is scikit-learn's ``C`` (inverse L2 strength).
        """
        if len(answers) != len(good):
            raise ValueError(f"{len(answers)} answers but {len(good)} labels")
        features = [confidence_features(a, quantile=quantile, first_k=first_k) for a in answers]
        return cls.fit_features(
            features, good, quantile=quantile, first_k=first_k, regularization=regularization
        )

    @classmethod
    def fit_features(
        cls,
        features: Sequence[dict[str, float]],
        good: Sequence[bool],
        *,
        quantile: float = 0.1,
        first_k: int = 8,
        regularization: float = 1.0,
    ) -> LearnedSignal:
        """Fit on already computed features (as recorded in the ledger's `signals`), which must
        have been computed with this `quantile` and `first_k`; every feature is required."""
        from sklearn.linear_model import LogisticRegression

        if len(features) != len(good):
            raise ValueError(f"{len(features)} answers but {len(good)} labels")
        labels = [bool(g) for g in good]
        if len(set(labels)) < 2:
            raise ValueError("fitting needs both good and bad answers")
        for i, row in enumerate(features):
            missing = [n for n in FEATURE_NAMES if n not in row]
            if missing:
                raise ValueError(f"answer {i} lacks features {missing}")
        rows = [[row[n] for n in FEATURE_NAMES] for row in features]
        model = LogisticRegression(C=regularization, max_iter=1000).fit(rows, labels)
        return cls(
            intercept=float(model.intercept_[0]),
            coefficients={n: float(w) for n, w in zip(FEATURE_NAMES, model.coef_[0], strict=True)},
            quantile=quantile,
            first_k=first_k,
        )
