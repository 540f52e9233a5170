"""Outcome records for offline cascade evaluation, validated from plain dicts.

One record per query (the DESIGN.md format): ``text``; ``small_correct`` and ``large_correct``
(a bool, or a score in [0, 1]); optional ``small_cost`` and ``large_cost`` (USD, >= 0), ``score``
(a confidence or a router's probability that the small model suffices, in [0, 1]: higher means
keep the small answer), ``route`` (adapter / domain) and ``logprobs`` (the small answer's token
log-probabilities, so any confidence signal can be computed offline).

This module does no I/O: the CLI reads the file and passes ``(line_number, value)`` pairs, and
every problem is raised as an ``OutcomeError`` naming the source, the line and the field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = [
    "Outcome",
    "OutcomeColumns",
    "OutcomeError",
    "group_by_route",
    "parse_outcomes",
    "to_columns",
]

REQUIRED_FIELDS = ("text", "small_correct", "large_correct")


class OutcomeError(ValueError):
    """A bad outcome record; the message names the source, line and field and how to fix it."""

    def __init__(
        self, source: str, problem: str, line: int | None = None, field: str | None = None
    ):
        where = source if line is None else f"{source}, line {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.line = line
        self.field = field


@dataclass(frozen=True)
class Outcome:
    """One query's outcome: how good each model's answer was, and what it cost."""

    text: str
    small_correct: float
    large_correct: float
    small_cost: Decimal | None = None
    large_cost: Decimal | None = None
    score: float | None = None
    route: str | None = None
    logprobs: tuple[float, ...] | None = None
    line: int | None = None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _unit(value: object, error: _Raiser, field: str, *, allow_bool: bool) -> float:
    if isinstance(value, bool):
        if allow_bool:
            return 1.0 if value else 0.0
        raise error(f"expected a number in [0, 1], got {value!r}", field)
    if not _is_number(value) or math.isnan(float(value)):  # type: ignore[arg-type]
        kind = "true/false or a number" if allow_bool else "a number"
        raise error(f"expected {kind} in [0, 1], got {value!r}", field)
    number = float(value)  # type: ignore[arg-type]
    if not 0.0 <= number <= 1.0:
        raise error(f"value {number} is outside [0, 1]", field)
    return number


def _cost(value: object, error: _Raiser, field: str) -> Decimal | None:
    if value is None:
        return None
    if not _is_number(value) or not math.isfinite(float(value)):  # type: ignore[arg-type]
        raise error(f"expected a cost in USD (a number >= 0), got {value!r}", field)
    if float(value) < 0:  # type: ignore[arg-type]
        raise error(f"cost {value} is negative", field)
    return Decimal(str(value))


def _logprobs(value: object, error: _Raiser, field: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(_is_number(v) for v in value):
        raise error("expected a list of token log-probabilities (numbers <= 0)", field)
    if any(math.isnan(v) for v in value):
        raise error("log-probabilities contain NaN", field)
    return tuple(float(v) for v in value)


class _Raiser:
    def __init__(self, source: str, line: int):
        self.source, self.line = source, line

    def __call__(self, problem: str, field: str | None = None) -> OutcomeError:
        return OutcomeError(self.source, problem, self.line, field)


def parse_outcome(
    record: object, *, source: str, line: int, score_field: str | None = "score"
) -> Outcome:
    """Validate one record (a decoded JSON value). ``score_field`` names where the score is."""
    error = _Raiser(source, line)
    if not isinstance(record, dict):
        raise error(f"expected a JSON object, got {type(record).__name__}")
    for field in REQUIRED_FIELDS:
        if field not in record:
            raise error(f"missing required field (need {', '.join(REQUIRED_FIELDS)})", field)
    text = record["text"]
    if not isinstance(text, str):
        raise error(f"expected a string, got {text!r}", "text")
    score = record.get(score_field) if score_field else None
    route = record.get("route")
    if route is not None and not isinstance(route, str):
        raise error(f"expected a string, got {route!r}", "route")
    return Outcome(
        text=text,
        small_correct=_unit(record["small_correct"], error, "small_correct", allow_bool=True),
        large_correct=_unit(record["large_correct"], error, "large_correct", allow_bool=True),
        small_cost=_cost(record.get("small_cost"), error, "small_cost"),
        large_cost=_cost(record.get("large_cost"), error, "large_cost"),
        score=None if score is None else _unit(score, error, str(score_field), allow_bool=False),
        route=route,
        logprobs=_logprobs(record.get("logprobs"), error, "logprobs"),
        line=line,
    )


def parse_outcomes(
    records: Iterable[tuple[int, Any]],
    *,
    source: str = "<outcomes>",
    score_field: str | None = "score",
    require_score: bool = False,
) -> list[Outcome]:
    """Validate ``(line_number, record)`` pairs; raise ``OutcomeError`` on the first bad one.

    With ``require_score`` every record must carry ``score_field`` (for evaluating or
    calibrating on a precomputed score). An input without any record is an error too.
    """
    outcomes = []
    for line, record in records:
        outcome = parse_outcome(record, source=source, line=line, score_field=score_field)
        if require_score and outcome.score is None:
            raise OutcomeError(
                source,
                "missing score (pass --score-field to name the field that holds it)",
                line,
                score_field,
            )
        outcomes.append(outcome)
    if not outcomes:
        raise OutcomeError(source, "no outcome records (the file is empty)")
    return outcomes


@dataclass(frozen=True)
class OutcomeColumns:
    """Outcomes as parallel float columns, the shape the metrics work on."""

    small: list[float]
    large: list[float]
    small_cost: list[float]
    large_cost: list[float]

    def subset(self, indices: Sequence[int]) -> OutcomeColumns:
        return OutcomeColumns(
            small=[self.small[i] for i in indices],
            large=[self.large[i] for i in indices],
            small_cost=[self.small_cost[i] for i in indices],
            large_cost=[self.large_cost[i] for i in indices],
        )


def _cost_column(
    outcomes: Sequence[Outcome], name: str, default: Decimal | float | None, source: str
) -> list[float]:
    column = []
    for outcome in outcomes:
        value = getattr(outcome, name)
        if value is None:
            if default is None:
                raise OutcomeError(
                    source, f"missing {name} (add it, or give a default cost)", outcome.line, name
                )
            value = default
        column.append(float(value))
    return column


def to_columns(
    outcomes: Sequence[Outcome],
    *,
    small_cost: Decimal | float | None = None,
    large_cost: Decimal | float | None = None,
    source: str = "<outcomes>",
) -> OutcomeColumns:
    """Columns for the metrics; ``small_cost``/``large_cost`` fill records without costs."""
    return OutcomeColumns(
        small=[o.small_correct for o in outcomes],
        large=[o.large_correct for o in outcomes],
        small_cost=_cost_column(outcomes, "small_cost", small_cost, source),
        large_cost=_cost_column(outcomes, "large_cost", large_cost, source),
    )


def group_by_route(outcomes: Sequence[Outcome]) -> dict[str, list[int]]:
    """Record indices per route (records without a route are grouped under ``""``)."""
    groups: dict[str, list[int]] = {}
    for index, outcome in enumerate(outcomes):
        groups.setdefault(outcome.route or "", []).append(index)
    return dict(sorted(groups.items()))
