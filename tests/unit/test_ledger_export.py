"""Export formats (CSV, JSONL) and the CLI's date option parsing."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import click
import pytest

from orchestrator.cli.ledger import IsoDateTime
from orchestrator.ledger import FIELDS
from orchestrator.ledger.export import csv_cell, jsonable_row, write_csv, write_jsonl
from tests.unit.test_ledger_row import make_row


def sample() -> list[dict[str, object]]:
    whole_second = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    return [
        make_row(query_id="a", cost_usd=Decimal("0.0000000001")).model_dump(),
        make_row(
            query_id="b", created_at=whole_second, route=None, escalated=False, stream=True,
            cost_small_usd=Decimal(0), error_message='say "hi", then\nleave',
        ).model_dump(),
    ]  # fmt: skip


def test_csv_has_a_header_and_exact_values() -> None:
    out = io.StringIO()
    assert write_csv(sample(), out) == 2
    parsed = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(parsed[0]) == list(FIELDS)
    first, second = parsed
    assert first["cost_usd"] == "0.0000000001"  # never 1E-10
    assert second["cost_small_usd"] == "0.0000000000"
    assert first["created_at"] == "2025-03-04T05:06:07.123456+00:00"
    assert second["created_at"] == "2025-01-02T03:04:05.000000+00:00"
    assert second["route"] == "" and second["stream"] == "true" and second["escalated"] == "false"
    assert second["error_message"] == 'say "hi", then\nleave'
    assert first["latency_total_ms"] == "395.75" and first["http_status"] == "200"


def test_jsonl_is_one_object_per_line_with_decimal_strings() -> None:
    out = io.StringIO()
    assert write_jsonl(sample(), out) == 2
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert list(first) == list(FIELDS)
    assert first["cost_usd"] == "0.0000000001" and Decimal(first["cost_large_usd"]) == Decimal(
        "0.00012"
    )
    assert second["route"] is None and second["stream"] is True
    assert first["confidence"] == 0.42 and first["small_prompt_tokens"] == 12
    assert datetime.fromisoformat(second["created_at"]) == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_jsonable_row_is_json_ready() -> None:
    row = jsonable_row(sample()[0])
    json.dumps(row)
    assert row["cost_small_usd"] == "0.0000084000"


def test_csv_cell_formats() -> None:
    assert csv_cell(None) == "" and csv_cell(True) == "true" and csv_cell(0.1) == "0.1"
    assert csv_cell(Decimal("0E-10")) == "0.0000000000"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-31", datetime(2025, 1, 31, tzinfo=UTC)),
        ("2025-01-31T12:00:00Z", datetime(2025, 1, 31, 12, tzinfo=UTC)),
        ("2025-01-31T12:00:00+02:00", datetime(2025, 1, 31, 10, tzinfo=UTC)),
        ("2025-01-31 12:00:00.5", datetime(2025, 1, 31, 12, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_iso_dates_are_utc(text: str, expected: datetime) -> None:
    parsed = IsoDateTime().convert(text, None, None)
    assert parsed == expected and parsed.utcoffset() == timedelta(0)


def test_bad_date_names_the_option() -> None:
    option = click.Option(["--until"])
    with pytest.raises(click.BadParameter) as caught:
        IsoDateTime().convert("31/01/2025", option, None)
    message = caught.value.format_message()
    assert "--until" in message and "ISO 8601" in message
