"""Migration 0006 (`ledger.signals`) on SQLite and PostgreSQL: rows written before it read back
without signals, and the signals round-trip (JSON text in the row, a dict for calibration)."""

from __future__ import annotations

import json
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
from orchestrator.ledger.feedback_rows import read_feedback_rows
from orchestrator.ledger.schema import ledger_table
from tests.postgres import database_url
from tests.unit.test_ledger_row import make_row

__all__ = ["database_url"]  # fixture used by this module

SIGNALS = {
    "first_k": 0.75,
    "geometric_mean": 0.5,
    "mean_prob": 0.625,
    "min_prob": 0.125,
    "quantile": 0.25,
}


def test_upgrade_from_0005_and_back(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine, "0005")
        with engine.begin() as connection:
            connection.execute(
                ledger_table.insert().values(
                    query_id="old-1", created_at=datetime(2025, 1, 2, tzinfo=UTC), tenant="t",
                    status="ok", http_status=200, model_requested="auto", stream=False,
                    escalated=False, degraded=False, adapter="legal",
                )
            )  # fmt: skip
        migrate(engine)  # to the head, so the current schema reads the old row
        assert current_revision(engine) == head_revision() >= "0006"
        row = reader.fetch_row(engine, "old-1")
        assert row is not None and row["signals"] is None
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0005")
        assert "signals" not in {c["name"] for c in sa.inspect(engine).get_columns("ledger")}
    finally:
        engine.dispose()


def test_signals_round_trip_to_calibration(database_url: str) -> None:
    accepted = make_row(
        query_id="s1", escalated=False, escalation_reason=None, answered_by="legal",
        confidence=0.625, confidence_signal="mean_prob", signals=SIGNALS,
    )  # fmt: skip
    with Ledger(database_url) as ledger:
        ledger.record(accepted)
        ledger.record(make_row(query_id="none", signals=None))
        assert ledger.flush()
        assert json.loads(ledger.get("s1")["signals"]) == SIGNALS  # type: ignore[index]
        assert ledger.get("none")["signals"] is None  # type: ignore[index]
        ledger.add_feedback("s1", 1.0, correct=True)
    (row,) = read_feedback_rows(database_url)
    assert (row["query_id"], row["signals"]) == ("s1", SIGNALS)
