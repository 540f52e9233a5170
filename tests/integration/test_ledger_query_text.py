"""Migration 0004 (`ledger.query_text`, `feedback.route`) on SQLite and PostgreSQL: rows
written before it read back without text, the dashboard triggers survive it (and its
downgrade), and the new values round-trip."""

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
from orchestrator.ledger.route_rows import read_route_rows
from orchestrator.ledger.schema import ledger_table
from tests.integration.test_ledger_fault_columns import _trigger_count
from tests.postgres import database_url
from tests.unit.test_ledger_row import make_row

__all__ = ["database_url"]  # fixture used by this module


def test_upgrade_from_0003_keeps_rows_and_triggers(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine, "0003")
        with engine.begin() as connection:
            connection.execute(
                ledger_table.insert().values(
                    query_id="old-1", created_at=datetime(2025, 1, 2, tzinfo=UTC), tenant="t",
                    status="ok", http_status=200, model_requested="auto", stream=False,
                    escalated=False, degraded=False,
                )
            )  # fmt: skip
            triggers = _trigger_count(connection)
        migrate(engine)
        assert current_revision(engine) == head_revision() >= "0004"
        row = reader.fetch_row(engine, "old-1")
        assert row is not None and row["query_text"] is None
        with engine.connect() as connection:
            assert _trigger_count(connection) == triggers
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0003")
        assert "query_text" not in {c["name"] for c in sa.inspect(engine).get_columns("ledger")}
        assert "route" not in {c["name"] for c in sa.inspect(engine).get_columns("feedback")}
        with engine.connect() as connection:
            assert _trigger_count(connection) == triggers
    finally:
        engine.dispose()


def test_query_text_and_corrected_route_round_trip(database_url: str) -> None:
    with Ledger(database_url) as ledger:
        ledger.record(make_row(query_id="kept", route="legal", query_text="a contract question"))
        ledger.record(make_row(query_id="plain", route="code"))
        assert ledger.flush()
        ledger.add_feedback("kept", 0.0, route="medical")
        ledger.add_feedback("kept", 1.0)  # a later judgement without a route keeps the route
        assert ledger.get("kept")["query_text"] == "a contract question"  # type: ignore[index]
    rows = {row["query_id"]: row for row in read_route_rows(database_url)}
    assert rows["kept"]["corrected_route"] == "medical"
    assert rows["kept"]["query_text"] == "a contract question"
    assert rows["plain"]["corrected_route"] is None and rows["plain"]["query_text"] is None
