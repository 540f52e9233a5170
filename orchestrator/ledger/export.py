"""Ledger rows as CSV or JSONL, the formats of `spillway ledger export`.

Both formats carry every LedgerRow field, in order. Money is written as a fixed-point decimal
string with 10 places ("0.0000123400"), never a JSON number or an exponent ("1E-10"), so it
is exact in any reader; datetimes are ISO 8601 in UTC with microseconds
("2025-01-02T03:04:05.000006+00:00"). CSV: a header row, empty cells for nulls, booleans as
true/false. JSONL: one object per line, nulls as null, booleans and numbers as JSON.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any, TextIO

from orchestrator.ledger.row import FIELDS


def jsonable(value: Any) -> Any:
    """A value as JSON-ready data: exact decimal strings and ISO 8601 times."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    return value


def jsonable_row(row: dict[str, Any]) -> dict[str, Any]:
    """A ledger row (from `Ledger.get` or `iter_rows`) ready for `json.dumps`."""
    return {key: jsonable(value) for key, value in row.items()}


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(jsonable(value))


def write_csv(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Write a header and one line per row; returns the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    count = 0
    for row in rows:
        writer.writerow([csv_cell(row.get(name)) for name in FIELDS])
        count += 1
    return count


def write_jsonl(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Write one JSON object per line; returns the number of rows."""
    count = 0
    for row in rows:
        record = {name: jsonable(row.get(name)) for name in FIELDS}
        out.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
        count += 1
    return count
