"""LedgerRow validation: exact money, UTC times, strings the databases accept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from orchestrator.ledger import FIELDS, LedgerRow
from orchestrator.ledger.row import ERROR_MESSAGE_MAX_CHARS
from orchestrator.ledger.schema import ledger_table

T0 = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def make_row(**overrides: Any) -> LedgerRow:
    """A complete, plausible row (an escalated query); override any field."""
    values: dict[str, Any] = {
        "query_id": "q-1",
        "created_at": T0,
        "tenant": "acme",
        "status": "ok",
        "http_status": 200,
        "model_requested": "auto",
        "stream": False,
        "route": "legal",
        "route_probability": 0.91,
        "router_version": "router-v1",
        "adapter": "legal",
        "answered_by": "large",
        "confidence": 0.42,
        "confidence_signal": "mean_prob",
        "threshold": 0.5,
        "escalated": True,
        "escalation_reason": "low_confidence",
        "small_prompt_tokens": 12,
        "small_completion_tokens": 30,
        "large_prompt_tokens": 12,
        "large_completion_tokens": 28,
        "cost_small_usd": Decimal("0.0000084000"),
        "cost_large_usd": Decimal("0.0001200000"),
        "cost_usd": Decimal("0.0001284000"),
        "baseline_cost_usd": Decimal("0.0001200000"),
        "latency_router_ms": 1.25,
        "latency_small_ms": 80.5,
        "latency_large_ms": 310.0,
        "latency_total_ms": 395.75,
    }
    values.update(overrides)
    return LedgerRow(**values)


def test_fields_are_the_table_columns_in_order() -> None:
    assert list(FIELDS) == [column.name for column in ledger_table.columns]


def test_minimal_error_row_defaults() -> None:
    row = LedgerRow(
        query_id="e1", created_at=T0, tenant="t", status="error", http_status=400,
        model_requested="nope", error_type="model_not_found", error_message="unknown model",
    )  # fmt: skip
    assert row.escalated is False and row.route is None
    assert row.small_prompt_tokens == 0 and row.cost_usd == Decimal(0)


def test_naive_created_at_is_refused_with_a_fix() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        make_row(created_at=datetime(2025, 1, 1, 12, 0))


def test_created_at_is_converted_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    row = make_row(created_at=datetime(2025, 1, 1, 14, 0, 0, 5, tzinfo=plus_two))
    assert row.created_at == datetime(2025, 1, 1, 12, 0, 0, 5, tzinfo=UTC)
    assert row.created_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("given_value", "stored"),
    [
        (Decimal("1.23456789012"), Decimal("1.2345678901")),
        (Decimal("0.00000000005"), Decimal("0")),  # banker's rounding: half to even
        (Decimal("0.00000000015"), Decimal("0.0000000002")),
        (0.1, Decimal("0.1")),
        ("0.000002", Decimal("0.000002")),
        (Decimal("9999999999.9999999999"), Decimal("9999999999.9999999999")),
    ],
)
def test_money_is_quantized_to_ten_places(given_value: Any, stored: Decimal) -> None:
    row = make_row(cost_usd=given_value)
    assert row.cost_usd == stored
    assert row.cost_usd.as_tuple().exponent == -10


@pytest.mark.parametrize("bad", [Decimal("-0.01"), Decimal("1e10"), "NaN", "inf", "abc"])
def test_money_out_of_range_is_refused(bad: Any) -> None:
    with pytest.raises(ValidationError):
        make_row(cost_large_usd=bad)


@pytest.mark.parametrize(
    "overrides",
    [
        {"status": "fine"},
        {"http_status": 99},
        {"small_prompt_tokens": -1},
        {"route_probability": 1.5},
        {"confidence": -0.1},
        {"latency_total_ms": -3.0},
        {"query_id": ""},
        {"tenant": ""},
        {"unexpected": 1},
    ],
)
def test_invalid_fields_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        make_row(**overrides)


def test_rows_are_immutable() -> None:
    row = make_row()
    with pytest.raises(ValidationError):
        row.tenant = "other"  # type: ignore[misc]


def test_strings_are_cleaned_of_what_databases_refuse() -> None:
    row = make_row(error_message="bad\x00byte \ud800 here", tenant="a\x00b")
    assert "\x00" not in row.tenant and "\x00" not in (row.error_message or "")
    (row.error_message or "").encode("utf-8")  # no lone surrogate left


def test_long_error_messages_are_truncated() -> None:
    row = make_row(status="error", error_message="x" * 10_000)
    assert row.error_message is not None
    assert len(row.error_message) == ERROR_MESSAGE_MAX_CHARS
    assert row.error_message.endswith("…")


def test_json_round_trip_is_exact() -> None:
    row = make_row(cost_usd=Decimal("0.0000000001"), latency_small_ms=None, route="médical ✓")
    assert LedgerRow.model_validate_json(row.model_dump_json()) == row


money = st.decimals(
    min_value=Decimal(0), max_value=Decimal("99999.9999999999"), places=10, allow_nan=False
)


@given(amount=money, when=st.datetimes(timezones=st.timezones()))
def test_json_round_trip_property(amount: Decimal, when: datetime) -> None:
    row = make_row(cost_usd=amount, created_at=when)
    again = LedgerRow.model_validate_json(row.model_dump_json())
    assert again == row and again.cost_usd == amount
    # Not `== when`: PEP 495 makes times in a DST gap or fold unequal across zones.
    assert again.created_at == when.astimezone(UTC)
