"""Calibration: targets, the calibrate -> evaluate round trip, files, infeasible targets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade.calibrate import (
    CalibrationError,
    Target,
    calibrate,
    choose_threshold,
    escalations,
    parse_target,
    policy_from_file_data,
)
from cascade.evaluate import Mode, operating_point
from cascade.outcomes import OutcomeColumns
from cascade.policy import CascadePolicy

COLUMNS = OutcomeColumns([1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 0.0], [1.0] * 4, [10.0] * 4)
SCORES = [0.9, 0.2, 0.5, 0.7]


def test_parse_target() -> None:
    assert parse_target("quality=0.95") == Target(kind="quality", value=0.95)
    assert parse_target(" escalation = 0.3") == Target(kind="escalation", value=0.3)
    assert parse_target("cost=12.5") == Target(kind="cost", value=12.5)
    for bad in ("quality", "speed=1", "quality=abc", "escalation=1.5", "cost=-1"):
        with pytest.raises(ValueError, match="target"):
            parse_target(bad)


def test_choose_threshold_exact() -> None:
    quality = choose_threshold(COLUMNS, SCORES, parse_target("quality=0.95"))
    assert (quality.threshold, quality.escalation_rate, quality.quality) == (0.5, 0.25, 0.75)
    assert quality.cost_per_1k == pytest.approx(3500)
    assert quality.quality_vs_large == pytest.approx(1.0)
    # at most half escalated: best quality is 1.0 at x=0.5 (threshold 0.7)
    capped = choose_threshold(COLUMNS, SCORES, parse_target("escalation=0.5"))
    assert (capped.threshold, capped.quality) == (0.7, 1.0)
    cheap = choose_threshold(COLUMNS, SCORES, parse_target("cost=1000"))
    assert (cheap.threshold, cheap.escalation_rate) == (0.0, 0.0)


def test_infeasible_cost_target_says_what_is_achievable() -> None:
    with pytest.raises(CalibrationError, match="cheapest point costs 1000 USD per 1k"):
        choose_threshold(COLUMNS, SCORES, parse_target("cost=10"))


def test_route_mode_calibrates_skip_below() -> None:
    result = calibrate(COLUMNS, SCORES, parse_target("quality=0.95"), mode="route")
    policy = result.policy()
    assert policy.default.skip_below == 0.5 and policy.default.threshold == 0.0


def test_file_round_trip_and_shape() -> None:
    groups = {"legal": [0, 1], "code": [2, 3]}
    result = calibrate(
        COLUMNS, SCORES, parse_target("quality=0.9"), groups=groups, min_route_records=1
    )
    data = result.to_dict({"outcomes": "x.jsonl"})
    assert set(data) == {"policy", "calibration"}
    assert set(data["policy"]["routes"]) == {"legal", "code"}
    assert data["calibration"]["target"] == {"kind": "quality", "value": 0.9}
    assert "escalation_rate" in data["calibration"]["routes"]["legal"]
    policy = policy_from_file_data(data)
    assert isinstance(policy, CascadePolicy) and policy == result.policy()
    with pytest.raises(ValueError, match="policy"):
        policy_from_file_data({"cascade": {}})


def test_small_routes_are_pooled() -> None:
    groups = {"a": [0], "b": [1], "c": [2, 3]}
    result = calibrate(
        COLUMNS, SCORES, parse_target("quality=0.95"), groups=groups, min_route_records=2
    )
    assert result.routes["a"] is result.routes["b"]
    assert result.routes["a"].records == 2


@st.composite
def outcome_data(draw: st.DrawFn) -> tuple[OutcomeColumns, list[float], list[str | None]]:
    n = draw(st.integers(5, 80))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    large = (rng.random(n) < 0.7).astype(float)
    small = np.where(rng.random(n) < 0.5, large, rng.random(n) < 0.3).astype(float)
    scores = np.round(rng.random(n), 2)  # rounding makes ties
    routes = [draw(st.sampled_from(["legal", "code", None])) for _ in range(n)]
    columns = OutcomeColumns(
        list(small), list(large), list(rng.random(n) * 0.1), list(0.5 + rng.random(n))
    )
    return columns, list(scores), routes


targets = st.one_of(
    st.builds(Target, kind=st.just("quality"), value=st.floats(0.5, 1.0)),
    st.builds(Target, kind=st.just("escalation"), value=st.floats(0.0, 1.0)),
    st.builds(Target, kind=st.just("cost"), value=st.floats(150.0, 2000.0)),
)


@settings(max_examples=80, deadline=None)
@given(outcome_data(), targets, st.sampled_from(["cascade", "route"]), st.integers(1, 30))
def test_calibrate_then_evaluate_meets_target(
    data: tuple[OutcomeColumns, list[float], list[str | None]],
    target: Target,
    mode: Mode,
    min_records: int,
) -> None:
    columns, scores, routes = data
    groups: dict[str, list[int]] = {}
    for i, route in enumerate(routes):
        groups.setdefault(route or "", []).append(i)
    try:
        result = calibrate(
            columns, scores, target, groups=groups, mode=mode, min_route_records=min_records
        )
    except CalibrationError:
        # a cost cap can be below every point; and no threshold in [0, 1] escalates a record
        # scored exactly 1.0, so a target that needs every record escalated is infeasible
        assert target.kind == "cost" or max(scores) == 1.0
        return
    decided = escalations(result.policy(), scores, routes, mode=mode)
    point = operating_point(columns, decided, mode=mode)
    if target.kind == "quality":
        assert point.quality >= target.value * point.quality_large - 1e-9
    elif target.kind == "escalation":
        assert point.share_large <= target.value + 1e-9
    else:
        assert point.cost_per_1k <= target.value + 1e-9
