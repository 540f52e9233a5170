"""Calibration inputs from ledger feedback: what is learnable, assumed large quality, errors."""

from __future__ import annotations

import pytest

from cascade.calibrate import (
    CalibrationError,
    calibrate,
    choose_threshold,
    learnable_floor,
    parse_target,
)
from cascade.feedback import FeedbackError, FeedbackRecord, feedback_outcomes
from cascade.policy import CascadePolicy, RoutePolicy


def _record(
    confidence: float, escalated: bool, score: float, route: str = "legal"
) -> FeedbackRecord:
    return FeedbackRecord(
        route=route,
        confidence=confidence,
        escalated=escalated,
        score=score,
        small_cost=0.001,
        large_cost=0.01,
    )


# Served with threshold 0.5: four accepted answers (judged small answers) and two escalated
# ones (judged large answers; the small answer's correctness is unknown).
RECORDS = [
    _record(0.9, False, 1.0),
    _record(0.8, False, 1.0),
    _record(0.7, False, 0.0),
    _record(0.6, False, 1.0),
    _record(0.3, True, 1.0),
    _record(0.2, True, 0.0),
]


def test_columns_mark_unknown_small_answers_and_assume_large_quality() -> None:
    data = feedback_outcomes(RECORDS, min_route_records=1)
    assert data.columns.small == [1.0, 1.0, 0.0, 1.0, 0.0, 0.0]
    # accepted rows: the large model's quality is the mean feedback on escalated answers
    assert data.columns.large == [0.5, 0.5, 0.5, 0.5, 1.0, 0.0]
    assert data.small_known == [True, True, True, True, False, False]
    assert data.large_quality == {"legal": 0.5}
    assert data.groups == {"legal": [0, 1, 2, 3, 4, 5]}
    assert learnable_floor(data.scores, data.small_known) == 0.3


def test_only_thresholds_above_the_floor_are_chosen() -> None:
    data = feedback_outcomes(RECORDS, min_route_records=1)
    fitted = choose_threshold(
        data.columns, data.scores, parse_target("quality=0.95"), small_known=data.small_known
    )
    # without the floor, threshold 0.0 (accept all, quality 4/6 >= 0.95 * 0.5) would win,
    # counting the two unjudged small answers as wrong
    assert (fitted.threshold, fitted.escalation_rate) == (0.6, pytest.approx(2 / 6))
    assert fitted.quality == pytest.approx(4 / 6)
    unrestricted = choose_threshold(data.columns, data.scores, parse_target("quality=0.95"))
    assert unrestricted.threshold == 0.0


def test_raising_the_threshold_when_small_answers_disappoint() -> None:
    records = [
        _record(0.9, False, 1.0),
        _record(0.8, False, 0.0),
        _record(0.7, False, 0.0),
        _record(0.6, False, 0.0),
        _record(0.3, True, 1.0),
        _record(0.2, True, 1.0),
    ]
    data = feedback_outcomes(records, min_route_records=1)
    fitted = choose_threshold(
        data.columns, data.scores, parse_target("quality=0.95"), small_known=data.small_known
    )
    assert (fitted.threshold, fitted.quality) == (0.9, 1.0)


def test_escalation_below_the_served_rate_is_not_learnable() -> None:
    data = feedback_outcomes(RECORDS, min_route_records=1)
    with pytest.raises(CalibrationError, match=r"thresholds <= 0\.3 are not learnable"):
        choose_threshold(
            data.columns, data.scores, parse_target("escalation=0.2"), small_known=data.small_known
        )


def test_small_routes_fall_back_to_the_default() -> None:
    records = [*RECORDS, _record(0.95, False, 1.0, route="code")]
    data = feedback_outcomes(records, min_route_records=3)
    assert list(data.groups) == ["legal"] and data.fallback_routes == ["code"]
    # code has no escalated feedback: it borrows the overall large quality
    assert data.large_quality == {"code": 0.5, "legal": 0.5}
    result = calibrate(
        data.columns,
        data.scores,
        parse_target("quality=0.95"),
        groups=data.groups,
        min_route_records=1,
        small_known=data.small_known,
    )
    assert set(result.routes) == {"legal"}
    assert result.default.records == 7 and result.routes["legal"].records == 6


def test_given_large_quality_and_errors() -> None:
    data = feedback_outcomes(RECORDS, large_quality=0.8, min_route_records=1)
    assert data.columns.large[:4] == [0.8] * 4
    with pytest.raises(FeedbackError, match="no ledger rows with feedback"):
        feedback_outcomes([])
    with pytest.raises(FeedbackError, match="--large-quality"):
        feedback_outcomes([_record(0.9, False, 1.0)])
    with pytest.raises(FeedbackError, match=r"in \[0, 1\]"):
        feedback_outcomes(RECORDS, large_quality=1.5)


def test_base_policy_keeps_signal_settings() -> None:
    from dataclasses import replace

    data = feedback_outcomes(RECORDS, min_route_records=1)
    result = calibrate(
        data.columns,
        data.scores,
        parse_target("quality=0.95"),
        groups=data.groups,
        signal="first_k",
        small_known=data.small_known,
        min_route_records=1,
    )
    base = CascadePolicy(
        default=RoutePolicy(signal="first_k", first_k=4, threshold=0.5),
        routes={"legal": RoutePolicy(signal="first_k", first_k=6, threshold=0.5)},
    )
    policy = replace(result, base=base).policy()
    assert policy.routes["legal"] == RoutePolicy(signal="first_k", first_k=6, threshold=0.6)
    assert policy.default.first_k == 4
