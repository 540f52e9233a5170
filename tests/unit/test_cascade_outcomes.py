"""Outcome record validation (errors name line and field) and the MMLU-Pro outcome builder."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from cascade.mmlu_pro import build_outcomes, model_names
from cascade.outcomes import (
    Outcome,
    OutcomeError,
    group_by_route,
    parse_outcomes,
    to_columns,
)
from cascade.pricing import TokenPrice

GOOD = {"text": "q", "small_correct": True, "large_correct": 0.5}


def _parse(*records: Any, **options: Any) -> list[Outcome]:
    return parse_outcomes(enumerate(records, start=1), source="o.jsonl", **options)


def test_valid_records() -> None:
    [a, b] = _parse(
        GOOD,
        {
            **GOOD,
            "small_correct": 0,
            "small_cost": 0.25,
            "large_cost": 2,
            "score": 0.7,
            "route": "legal",
            "logprobs": [-0.1, 0],
            "extra": "ignored",
        },
    )
    assert (a.small_correct, a.large_correct, a.score, a.line) == (1.0, 0.5, None, 1)
    assert (b.small_cost, b.large_cost) == (Decimal("0.25"), Decimal("2"))
    assert (b.score, b.route, b.logprobs, b.line) == (0.7, "legal", (-0.1, 0.0), 2)


@pytest.mark.parametrize(
    ("record", "field", "problem"),
    [
        ({"small_correct": 1, "large_correct": 1}, "text", "missing required field"),
        ({"text": "q", "large_correct": 1}, "small_correct", "missing required field"),
        ({**GOOD, "large_correct": 1.5}, "large_correct", "outside [0, 1]"),
        ({**GOOD, "small_correct": -0.1}, "small_correct", "outside [0, 1]"),
        ({**GOOD, "small_correct": "yes"}, "small_correct", "true/false or a number"),
        ({**GOOD, "large_correct": float("nan")}, "large_correct", "true/false or a number"),
        ({**GOOD, "text": 3}, "text", "expected a string"),
        ({**GOOD, "score": 2}, "score", "outside [0, 1]"),
        ({**GOOD, "score": True}, "score", "expected a number"),
        ({**GOOD, "small_cost": -1}, "small_cost", "negative"),
        ({**GOOD, "large_cost": "1"}, "large_cost", "expected a cost"),
        ({**GOOD, "route": 5}, "route", "expected a string"),
        ({**GOOD, "logprobs": [-0.1, "x"]}, "logprobs", "log-probabilities"),
    ],
)
def test_bad_records_name_line_and_field(record: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(OutcomeError) as caught:
        _parse(GOOD, record)
    message = str(caught.value)
    assert message.startswith(f"o.jsonl, line 2, field '{field}': ")
    assert problem in message
    assert (caught.value.line, caught.value.field) == (2, field)


def test_non_object_and_empty_input() -> None:
    with pytest.raises(OutcomeError, match=r"line 1: expected a JSON object, got list"):
        _parse([1, 2])
    with pytest.raises(OutcomeError, match=r"^o.jsonl: no outcome records"):
        _parse()


def test_score_field_and_required_score() -> None:
    [o] = _parse({**GOOD, "p_small": 0.25}, score_field="p_small")
    assert o.score == 0.25
    with pytest.raises(OutcomeError, match=r"line 1, field 'score': missing score"):
        _parse(GOOD, require_score=True)


def test_columns_fill_missing_costs_or_name_the_record() -> None:
    outcomes = _parse(GOOD, {**GOOD, "small_cost": 0.5, "large_cost": 3})
    columns = to_columns(outcomes, small_cost=0.1, large_cost=1.0)
    assert columns.small_cost == [0.1, 0.5] and columns.large_cost == [1.0, 3.0]
    assert columns.subset([1]).large == [0.5]
    with pytest.raises(OutcomeError, match=r"line 1, field 'small_cost': missing small_cost"):
        to_columns(outcomes, source="o.jsonl")


def test_group_by_route() -> None:
    outcomes = _parse({**GOOD, "route": "b"}, GOOD, {**GOOD, "route": "a"}, {**GOOD, "route": "b"})
    assert group_by_route(outcomes) == {"": [1], "a": [2], "b": [0, 3]}


PRICE_S = TokenPrice(input_per_million=Decimal(1), output_per_million=Decimal(2))
PRICE_L = TokenPrice(input_per_million=Decimal(10), output_per_million=Decimal(20))


def test_mmlu_pro_builder() -> None:
    questions = [
        {
            "question_id": 1,
            "text": "abcd" * 10,
            "label": "legal",
            "category": "law",
            "options": ["x" * 4, "y" * 4],
        },
        {"question_id": 2, "text": "q", "label": "code", "category": "computer science"},
    ]
    correct = [
        {"question_id": "1", "category": "law", "src": "s", "S": "0", "L": "1"},
        {"question_id": "2", "category": "cs", "src": "s", "S": "1", "L": ""},
        {"question_id": "3", "category": "cs", "src": "s", "S": "1", "L": "1"},
    ]
    chars = [{"question_id": "1", "category": "law", "src": "s", "S": "400", "L": "800"}]
    report = build_outcomes(
        questions, correct, chars, small="S", large="L", small_price=PRICE_S, large_price=PRICE_L
    )
    assert (report.skipped_no_result, report.skipped_no_question) == (1, 1)
    [record] = report.records
    # prompt: 40 chars + 2 options * (4 + 4) = 56 chars = 14 tokens; outputs 100 and 200 tokens
    assert record["prompt_tokens"] == 14
    assert (record["small_correct"], record["large_correct"], record["route"]) == (
        False,
        True,
        "legal",
    )
    assert record["small_cost"] == pytest.approx((14 * 1 + 100 * 2) / 1e6)
    assert record["large_cost"] == pytest.approx((14 * 10 + 200 * 20) / 1e6)
    [outcome] = parse_outcomes([(1, record)])
    assert outcome.route == "legal"
    assert model_names(["question_id", "category", "src", "S", "L"]) == ["S", "L"]
    with pytest.raises(ValueError, match="unknown model"):
        build_outcomes(
            questions,
            correct,
            chars,
            small="X",
            large="L",
            small_price=PRICE_S,
            large_price=PRICE_L,
        )
