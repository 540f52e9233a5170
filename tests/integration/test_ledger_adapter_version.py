"""Migration 0005 (`ledger.adapter_version`) on SQLite and PostgreSQL: rows written before it
read back without a version, the dashboard triggers survive it and its downgrade, and the new
value round-trips through the writer, the reader and the export."""

from __future__ import annotations

from datetime import UTC, datetime

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
from orchestrator.ledger.schema import ledger_table
from tests.integration.test_ledger_fault_columns import _trigger_count
from tests.postgres import database_url
from tests.unit.test_ledger_row import make_row

__all__ = ["database_url"]  # fixture used by this module


def _columns(engine: sa.Engine) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns("ledger")}


def test_upgrade_from_0004_keeps_rows_and_triggers(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine, "0004")
        with engine.begin() as connection:
            connection.execute(
                ledger_table.insert().values(
                    query_id="old-1", created_at=datetime(2025, 1, 2, tzinfo=UTC), tenant="t",
                    status="ok", http_status=200, model_requested="legal", stream=False,
                    escalated=False, degraded=False, adapter="legal",
                )
            )  # fmt: skip
            triggers = _trigger_count(connection)
        migrate(engine)  # to the head, so the current schema reads the old row
        assert current_revision(engine) == head_revision() >= "0005"
        row = reader.fetch_row(engine, "old-1")
        assert row is not None and row["adapter"] == "legal" and row["adapter_version"] is None
        with engine.connect() as connection:
            assert _trigger_count(connection) == triggers
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0004")
        assert "adapter_version" not in _columns(engine)
        with engine.connect() as connection:
            assert _trigger_count(connection) == triggers
    finally:
        engine.dispose()


def test_adapter_version_round_trips(database_url: str) -> None:
    with Ledger(database_url) as ledger:
        ledger.record(make_row(query_id="v2", adapter="legal", adapter_version="legal@2"))
        ledger.record(make_row(query_id="base"))
        assert ledger.flush()
        assert ledger.get("v2")["adapter_version"] == "legal@2"  # type: ignore[index]
        assert ledger.get("base")["adapter_version"] is None  # type: ignore[index]
