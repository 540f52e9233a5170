"""The cost ledger: one row per query, answered or failed (SQLAlchemy Core; SQLite or
PostgreSQL, the same Alembic migrations for both).

    ledger = Ledger("sqlite:///.spillway/ledger.db", spool_path=Path(".spillway/spool.jsonl"))
    ledger.start()
    ledger.record(LedgerRow(...))   # never blocks, never raises
    ledger.get(query_id)            # includes rows still queued
    ledger.close()                  # writes everything, then stops
"""

from __future__ import annotations

from orchestrator.ledger.errors import LedgerError, LedgerUnavailable, UnknownQueryError
from orchestrator.ledger.row import FIELDS, MONEY_FIELDS, LedgerRow
from orchestrator.ledger.rowqueue import LedgerStats
from orchestrator.ledger.writer import Ledger

__all__ = [
    "FIELDS",
    "MONEY_FIELDS",
    "Ledger",
    "LedgerError",
    "LedgerRow",
    "LedgerStats",
    "LedgerUnavailable",
    "UnknownQueryError",
]
