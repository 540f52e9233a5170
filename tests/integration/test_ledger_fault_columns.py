"""Migration 0003 (`degraded`, `faults`) on SQLite and PostgreSQL: rows written before it
read back as not degraded, the dashboard triggers survive it, the new values round-trip and
`spillway ledger export` carries them."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import command

from orchestrator.ledger import Ledger, reader
from orchestrator.ledger.engine import (
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    migrate,
)
from orchestrator.ledger.export import write_csv, write_jsonl
from orchestrator.ledger.schema import ledger_table
from tests.postgres import database_url
from tests.unit.test_ledger_row import make_row

__all__ = ["database_url"]  # fixture used by this module


def _trigger_count(connection: sa.Connection) -> int:
    if connection.dialect.name == "sqlite":
        query = "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
    else:
        query = "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal"
    return int(connection.scalar(sa.text(query)) or 0)


def _old_row(connection: sa.Connection) -> None:
    """A row as revision 0002 wrote it: no degraded, no faults."""
    connection.execute(
        ledger_table.insert().values(
            query_id="old-1", created_at=datetime(2025, 1, 2, tzinfo=UTC), tenant="t",
            status="ok", http_status=200, model_requested="auto", stream=False, escalated=False,
        )
    )  # fmt: skip


def test_upgrade_from_0002_keeps_rows_and_triggers(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine, "0002")
        with engine.begin() as connection:
            _old_row(connection)
            triggers = _trigger_count(connection)
        assert triggers > 0
        migrate(engine)  # to the head, so the current schema reads the old row
        assert current_revision(engine) == head_revision()
        row = reader.fetch_row(engine, "old-1")
        assert row is not None and row["degraded"] is False and row["faults"] is None
        with engine.connect() as connection:
            assert _trigger_count(connection) == triggers
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0002")
        columns = {c["name"] for c in sa.inspect(engine).get_columns("ledger")}
        assert {"degraded", "faults"}.isdisjoint(columns) and "escalated" in columns
        with engine.connect() as connection:
            assert _trigger_count(connection) == triggers
    finally:
        engine.dispose()


def test_fault_columns_round_trip_and_export(database_url: str) -> None:
    rows = [
        make_row(
            query_id="deg", degraded=True, faults="large", escalation_reason="large_unavailable"
        ),
        make_row(query_id="both", status="error", http_status=503, faults="small,large"),
        make_row(query_id="fine"),
    ]
    with Ledger(database_url) as ledger:
        for row in rows:
            ledger.record(row)
        assert ledger.flush(10)
        stored = {r["query_id"]: r for r in ledger.iter_rows()}
    for row in rows:
        assert stored[row.query_id] == row.model_dump()
    out = io.StringIO()
    write_jsonl(stored.values(), out)
    exported: dict[str, Any] = {
        record["query_id"]: record for record in map(json.loads, out.getvalue().splitlines())
    }
    assert exported["deg"]["degraded"] is True and exported["deg"]["faults"] == "large"
    assert exported["fine"]["degraded"] is False and exported["fine"]["faults"] is None
    csv_out = io.StringIO()
    write_csv([stored["both"]], csv_out)
    (record,) = csv.DictReader(io.StringIO(csv_out.getvalue()))
    columns = list(record)  # later revisions' columns follow these four
    start = columns.index("degraded")
    assert columns[start : start + 4] == ["degraded", "faults", "query_text", "adapter_version"]
    assert record["degraded"] == "false" and record["faults"] == "small,large"
    assert record["http_status"] == "503"
