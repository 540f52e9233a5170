"""Policy decisions: thresholds per route, reasons, and config validation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from cascade.confidence import LearnedSignal, Signal
from cascade.policy import (
    REASON_CONFIDENT,
    REASON_LOW_CONFIDENCE,
    REASON_PREDICTED_HARD,
    CascadePolicy,
    Decision,
    RoutePolicy,
    decide,
    decide_before_generation,
)

LN_HALF = math.log(0.5)


def _policy(**routes: RoutePolicy) -> CascadePolicy:
    return CascadePolicy(default=RoutePolicy(threshold=0.6), routes=routes)


def test_reasons_are_stable_strings() -> None:
    assert (REASON_CONFIDENT, REASON_LOW_CONFIDENCE, REASON_PREDICTED_HARD) == (
        "confident",
        "low_confidence",
        "predicted_hard",
    )


def test_default_policy_escalates_below_threshold() -> None:
    decision = decide(_policy(), "general", [LN_HALF, LN_HALF])
    assert decision == Decision(
        escalate=True,
        reason="low_confidence",
        signal="mean_prob",
        confidence=pytest.approx(0.5),  # type: ignore[arg-type]
        threshold=0.6,
    )


def test_confidence_equal_to_threshold_is_accepted() -> None:
    policy = CascadePolicy(default=RoutePolicy(threshold=0.5))
    decision = decide(policy, "x", [LN_HALF])
    assert decision.confidence == 0.5
    assert not decision.escalate
    assert decision.reason == "confident"


def test_route_policy_replaces_default() -> None:
    legal = RoutePolicy(signal=Signal.min_prob, threshold=0.4)
    policy = _policy(legal=legal)
    assert policy.for_route("legal") is legal
    assert policy.for_route("code") is policy.default
    decision = decide(policy, "legal", [LN_HALF, -0.01])
    assert (decision.escalate, decision.signal, decision.threshold) == (False, "min_prob", 0.4)


def test_threshold_one_escalates_even_fully_certain_answers() -> None:
    policy = CascadePolicy(default=RoutePolicy(threshold=1.0))
    for signal in ("mean_prob", "geometric_mean", "min_prob", "quantile", "first_k"):
        rp = RoutePolicy(signal=Signal(signal), threshold=1.0)
        assert decide(CascadePolicy(default=rp), "r", [0.0, 0.0, 0.0]).escalate
    assert decide(policy, "r", [-1e-9]).escalate


@given(st.lists(st.floats(-30, 0), max_size=20))
def test_threshold_zero_never_escalates_and_one_always_does(lps: list[float]) -> None:
    assert not decide(CascadePolicy(default=RoutePolicy(threshold=0.0)), "r", lps).escalate
    assert decide(CascadePolicy(default=RoutePolicy(threshold=1.0)), "r", lps).escalate


def test_empty_answer_escalates() -> None:
    decision = decide(CascadePolicy(default=RoutePolicy(threshold=0.01)), "r", [])
    assert decision.escalate and decision.confidence == 0.0


def test_learned_signal_policy() -> None:
    learned = LearnedSignal(intercept=-3.0, coefficients={"mean_prob": 6.0})
    rp = RoutePolicy(signal="learned", threshold=0.5, learned=learned.to_dict())  # type: ignore[arg-type]
    sure = decide(CascadePolicy(default=rp), "r", [-0.01, -0.01])
    unsure = decide(CascadePolicy(default=rp), "r", [-2.0, -2.0])
    assert (sure.escalate, sure.reason, sure.signal) == (False, "confident", "learned")
    assert (unsure.escalate, unsure.reason) == (True, "low_confidence")


def test_policy_validation_errors_name_the_problem() -> None:
    with pytest.raises(ValidationError, match="threshold"):
        RoutePolicy(threshold=1.2)
    with pytest.raises(ValidationError, match="threshold"):
        RoutePolicy()  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="extra"):
        RoutePolicy.model_validate({"threshold": 0.5, "treshold": 0.5})
    with pytest.raises(ValidationError, match="needs `learned`"):
        RoutePolicy(signal=Signal.learned, threshold=0.5)
    with pytest.raises(ValidationError, match="only used with signal 'learned'"):
        RoutePolicy(threshold=0.5, learned=LearnedSignal(intercept=0, coefficients={}))
    with pytest.raises(ValidationError, match="signal"):
        RoutePolicy.model_validate({"threshold": 0.5, "signal": "median"})
    with pytest.raises(ValidationError, match="first_k"):
        RoutePolicy(threshold=0.5, first_k=0)


def test_policy_loads_from_plain_config_data() -> None:
    policy = CascadePolicy.model_validate(
        {
            "default": {"threshold": 0.7},
            "routes": {"code": {"signal": "quantile", "threshold": 0.3, "quantile": 0.2}},
        }
    )
    assert policy.for_route("code").quantile == 0.2
    assert CascadePolicy.model_validate(policy.model_dump(mode="json")) == policy


def test_every_field_is_described() -> None:
    for model in (RoutePolicy, CascadePolicy):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_pre_generation_skip() -> None:
    policy = _policy(legal=RoutePolicy(threshold=0.5, skip_below=0.3))
    skip = decide_before_generation(policy, "legal", 0.1)
    assert skip == Decision(
        escalate=True, reason="predicted_hard", signal="difficulty", confidence=0.1, threshold=0.3
    )
    assert decide_before_generation(policy, "legal", 0.3) is None
    assert decide_before_generation(policy, "legal", None) is None
    assert decide_before_generation(policy, "general", 0.0) is None  # no skip_below configured
    with pytest.raises(ValueError, match="probability"):
        decide_before_generation(policy, "legal", 1.5)
