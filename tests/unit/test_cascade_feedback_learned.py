"""The learned signal fitted from feedback rows (`cascade.feedback.fit_learned_from_feedback`,
`LearnedSignal.fit_features`): which rows it learns from, and the same fit as from logprobs."""

from __future__ import annotations

import math

import pytest

from cascade.confidence import FEATURE_NAMES, LearnedSignal, confidence_features
from cascade.feedback import FeedbackError, fit_learned_from_feedback

ANSWERS = [
    [math.log(p) for p in probs]
    for probs in (
        [0.95, 0.9, 0.97],
        [0.99, 0.98],
        [0.9, 0.85, 0.93, 0.91],
        [0.4, 0.7, 0.5],
        [0.3, 0.95],
        [0.6, 0.2, 0.8, 0.5],
    )
]
GOOD = [True, True, True, False, False, False]


def test_fit_features_is_the_fit_on_logprobs() -> None:
    features = [confidence_features(a, first_k=2) for a in ANSWERS]
    assert LearnedSignal.fit_features(features, GOOD, first_k=2) == LearnedSignal.fit(
        ANSWERS, GOOD, first_k=2
    )


def test_fit_features_names_a_missing_feature() -> None:
    features = [confidence_features(a) for a in ANSWERS]
    del features[4]["min_prob"]
    with pytest.raises(ValueError, match=r"answer 4 lacks features \['min_prob'\]"):
        LearnedSignal.fit_features(features, GOOD)


def test_only_accepted_answers_with_signals_are_learned_from() -> None:
    features = [confidence_features(a) for a in ANSWERS]
    # An escalated row's feedback judges the large answer; a row without signals predates 0006.
    signals = [*features, features[0], None]
    scores = [1.0, 1.0, 0.5, 0.0, 0.49, 0.0, 0.0, 1.0]
    escalated = [False] * 6 + [True, False]
    fitted = fit_learned_from_feedback(signals, scores, escalated, quantile=0.2)
    assert fitted == LearnedSignal.fit_features(features, GOOD, quantile=0.2)
    assert set(fitted.coefficients) == set(FEATURE_NAMES)
    assert fitted.score_features(features[1]) > 0.5 > fitted.score_features(features[4])


def test_one_class_or_no_signals_is_a_clear_error() -> None:
    features = [confidence_features(a) for a in ANSWERS]
    with pytest.raises(FeedbackError, match=r"found 3 accepted answer\(s\) with signals, all"):
        fit_learned_from_feedback(features[:3], [1.0] * 3, [False] * 3)
    with pytest.raises(FeedbackError, match=r"ledger rows with signals \(written since migration"):
        fit_learned_from_feedback([None, features[0]], [1.0, 0.0], [False, True])
