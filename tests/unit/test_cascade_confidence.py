"""Confidence signals: exact values, edge cases, and properties that must hold for any input."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cascade.confidence import (
    FEATURE_NAMES,
    LOGPROB_CEILING,
    LearnedSignal,
    Signal,
    compute_confidence,
    confidence_features,
)

logprob = st.floats(min_value=-50.0, max_value=0.0, allow_nan=False)
answers = st.lists(logprob, min_size=1, max_size=40)

LN_HALF = math.log(0.5)
LN_QUARTER = math.log(0.25)


def test_signal_names_are_stable() -> None:
    assert [s.value for s in Signal] == [
        "mean_prob",
        "geometric_mean",
        "min_prob",
        "quantile",
        "first_k",
        "learned",
    ]
    assert Signal("quantile") is Signal.quantile


def test_exact_values_on_a_small_answer() -> None:
    lps = [LN_HALF, LN_QUARTER, LN_HALF, LN_HALF]  # probabilities .5 .25 .5 .5
    assert compute_confidence(lps) == pytest.approx(0.4375)
    assert compute_confidence(lps, Signal.geometric_mean) == pytest.approx(0.25**0.25 * 0.5**0.75)
    assert compute_confidence(lps, Signal.min_prob) == pytest.approx(0.25)
    # sorted .25 .5 .5 .5; 10% quantile at position 0.3: .25 + .3 * .25
    assert compute_confidence(lps, Signal.quantile) == pytest.approx(0.325)
    assert compute_confidence(lps, Signal.quantile, quantile=0.0) == pytest.approx(0.25)
    assert compute_confidence(lps, Signal.quantile, quantile=1.0) == pytest.approx(0.5)
    assert compute_confidence(lps, Signal.first_k, first_k=2) == pytest.approx(0.375)
    assert compute_confidence(lps, Signal.first_k, first_k=100) == pytest.approx(0.4375)


def test_signal_accepts_plain_strings() -> None:
    assert compute_confidence([LN_HALF], "min_prob") == pytest.approx(0.5)  # type: ignore[arg-type]


def test_empty_answer_scores_zero_on_every_signal() -> None:
    for signal in Signal:
        if signal is not Signal.learned:
            assert compute_confidence([], signal) == 0.0
    assert confidence_features([]) == dict.fromkeys(FEATURE_NAMES, 0.0)


def test_certain_tokens_stay_below_one() -> None:
    """Exactly-zero (and noisy positive) logprobs are clamped, so 1.0 is never reached."""
    for signal in FEATURE_NAMES:
        value = compute_confidence([0.0, 0.0, 1e-6], Signal(signal))
        assert value == pytest.approx(math.exp(LOGPROB_CEILING))
        assert value < 1.0


def test_impossible_tokens_score_zero() -> None:
    lps = [-math.inf, LN_HALF]
    assert compute_confidence(lps, Signal.min_prob) == 0.0
    assert compute_confidence(lps, Signal.geometric_mean) == 0.0
    assert compute_confidence(lps) == pytest.approx(0.25)


def test_nan_and_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        compute_confidence([math.nan])
    with pytest.raises(ValueError, match="quantile"):
        compute_confidence([LN_HALF], Signal.quantile, quantile=1.5)
    with pytest.raises(ValueError, match="first_k"):
        compute_confidence([LN_HALF], Signal.first_k, first_k=0)
    with pytest.raises(ValueError, match="LearnedSignal"):
        compute_confidence([LN_HALF], Signal.learned)


@given(answers, st.floats(0.0, 1.0), st.integers(1, 50))
def test_every_signal_is_in_unit_interval(lps: list[float], q: float, k: int) -> None:
    features = confidence_features(lps, quantile=q, first_k=k)
    assert set(features) == set(FEATURE_NAMES)
    for value in features.values():
        assert 0.0 <= value < 1.0


@given(answers, st.floats(0.0, 1.0))
def test_orderings_between_signals(lps: list[float], q: float) -> None:
    f = confidence_features(lps, quantile=q)
    assert f["min_prob"] <= f["geometric_mean"] + 1e-12
    assert f["geometric_mean"] <= f["mean_prob"]
    assert f["min_prob"] <= f["quantile"] <= max(math.exp(min(x, LOGPROB_CEILING)) for x in lps)


@given(answers, st.floats(0.0, 0.5), st.floats(0.0, 0.5))
def test_quantile_is_monotone_in_q(lps: list[float], q1: float, dq: float) -> None:
    low = compute_confidence(lps, Signal.quantile, quantile=q1)
    high = compute_confidence(lps, Signal.quantile, quantile=q1 + dq)
    assert low <= high + 1e-12


@given(answers, logprob)
def test_a_less_likely_token_never_raises_confidence(lps: list[float], lowered: float) -> None:
    worse = [*lps[:-1], min(lps[-1], lowered)]
    for name in ("mean_prob", "geometric_mean", "min_prob"):
        assert compute_confidence(worse, Signal(name)) <= compute_confidence(lps, Signal(name))


def _learned() -> LearnedSignal:
    return LearnedSignal(intercept=-2.0, coefficients={"mean_prob": 4.0, "min_prob": 1.0})


def test_learned_signal_scores_by_logistic_formula() -> None:
    lps = [LN_HALF, LN_QUARTER]
    z = -2.0 + 4.0 * 0.375 + 1.0 * 0.25
    assert _learned().score(lps) == pytest.approx(1 / (1 + math.exp(-z)))
    assert _learned().score([]) == 0.0


def test_learned_signal_round_trips_through_a_plain_dict() -> None:
    data = _learned().to_dict()
    assert data == {
        "intercept": -2.0,
        "coefficients": {"mean_prob": 4.0, "min_prob": 1.0},
        "quantile": 0.1,
        "first_k": 8,
    }
    assert LearnedSignal.from_dict(data) == _learned()


def test_learned_signal_rejects_unknown_features_and_extra_keys() -> None:
    with pytest.raises(ValueError, match="unknown features"):
        LearnedSignal(intercept=0.0, coefficients={"length": 1.0})
    with pytest.raises(ValueError, match="extra"):
        LearnedSignal.from_dict({"intercept": 0.0, "coefficients": {}, "bias": 1})


def test_learned_signal_fit_separates_confident_from_unsure_answers() -> None:
    sure = [[-0.01, -0.02, -0.05]] * 20
    unsure = [[-1.5, -2.0, -0.7]] * 20
    model = LearnedSignal.fit(sure + unsure, [True] * 20 + [False] * 20)
    assert model.score(sure[0]) > 0.8
    assert model.score(unsure[0]) < 0.2
    assert set(model.coefficients) == set(FEATURE_NAMES)


def test_learned_signal_fit_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both"):
        LearnedSignal.fit([[-0.1], [-0.2]], [True, True])
    with pytest.raises(ValueError, match="labels"):
        LearnedSignal.fit([[-0.1]], [True, False])


@given(answers)
def test_learned_score_is_a_probability(lps: list[float]) -> None:
    assert 0.0 <= _learned().score(lps) <= 1.0
