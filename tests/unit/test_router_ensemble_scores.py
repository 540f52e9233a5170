"""Combining ensemble members' scores and choosing the encoder weight (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from router_training.ensemble import EnsembleSpec, choose_weight, combine, log_softmax


def spec(weight: float, t_encoder: float = 1.0, t_member: float = 1.0) -> EnsembleSpec:
    return EnsembleSpec(
        member="tfidf",
        encoder_weight=weight,
        encoder_temperature=t_encoder,
        member_temperature=t_member,
    )


def test_log_softmax_normalises_and_scales() -> None:
    logits = np.array([[2.0, 0.0, -1.0]])
    out = log_softmax(logits, 2.0)
    assert np.isclose(np.exp(out).sum(), 1.0)
    assert np.allclose(out - out[0, 0], [[0.0, -1.0, -1.5]])


def test_combine_weights_the_members_log_probabilities() -> None:
    encoder = np.array([[4.0, 0.0], [0.0, 1.0]])
    member = np.array([[0.0, 2.0], [3.0, 0.0]])
    assert np.allclose(combine(encoder, member, spec(1.0)), log_softmax(encoder, 1.0))
    assert np.allclose(combine(encoder, member, spec(0.0, t_member=2.0)), log_softmax(member, 2.0))
    half = combine(encoder, member, spec(0.5))
    expected = 0.5 * log_softmax(encoder, 1.0) + 0.5 * log_softmax(member, 1.0)
    assert np.allclose(half, expected)
    assert half[0].argmax() == 0  # 4-logit encoder margin beats the member's 2


def test_choose_weight_prefers_the_informative_member() -> None:
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 3, 300)
    informative = np.eye(3)[targets] * 4.0 + rng.normal(0, 0.5, (300, 3))
    noise = rng.normal(0, 1.0, (300, 3))
    assert choose_weight(informative, noise, targets, "tfidf").encoder_weight >= 0.9
    assert choose_weight(noise, informative, targets, "tfidf").encoder_weight <= 0.1
    both = choose_weight(informative, informative + rng.normal(0, 0.5, (300, 3)), targets, "tfidf")
    assert 0.0 < both.encoder_weight < 1.0


def test_spec_rejects_unknown_fields_and_bad_weights() -> None:
    with pytest.raises(ValidationError):
        EnsembleSpec.model_validate({**spec(0.5).model_dump(), "extra": 1})
    with pytest.raises(ValidationError):
        spec(1.5)
