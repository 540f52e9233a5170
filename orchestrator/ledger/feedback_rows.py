"""Reading ledger rows joined with their latest feedback, for calibration from live traffic.

Only rows the cascade decided after generation qualify: status ``ok``, a confidence recorded,
and either accepted (not escalated: the service writes no escalation reason then) or escalated
for ``low_confidence``. Queries sent straight to the large model carry no confidence
(requested) or the difficulty scorer's (``predicted_hard``, excluded by its reason), and
degraded answers (``large_unavailable``) are excluded too.
When a query has several feedback entries, the latest one counts.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Engine

from cascade.policy import REASON_LOW_CONFIDENCE
from orchestrator.ledger.engine import (
    check_ledger_exists,
    make_engine,
    parse_url,
    sqlite_path,
    unavailable_message,
)
from orchestrator.ledger.errors import LedgerError, LedgerUnavailable
from orchestrator.ledger.schema import feedback_table, ledger_table

__all__ = ["FEEDBACK_COLUMNS", "open_ledger", "read_feedback_rows"]

FEEDBACK_COLUMNS = (
    "query_id",
    "route",
    "adapter",
    "confidence",
    "confidence_signal",
    "escalated",
    "escalation_reason",
    "cost_small_usd",
    "cost_large_usd",
    "baseline_cost_usd",
    "signals",
)


def _query() -> sa.Select[Any]:
    latest = (
        sa.select(sa.func.max(feedback_table.c.id).label("id"))
        .group_by(feedback_table.c.query_id)
        .subquery()
    )
    ledger = ledger_table.c
    return (
        sa.select(
            *(ledger[name] for name in FEEDBACK_COLUMNS),
            feedback_table.c.score.label("feedback_score"),
        )
        .select_from(
            feedback_table.join(latest, feedback_table.c.id == latest.c.id).join(
                ledger_table, ledger.query_id == feedback_table.c.query_id
            )
        )
        .where(
            ledger.status == "ok",
            ledger.confidence.is_not(None),
            sa.or_(
                ledger.escalated.is_(False),
                ledger.escalation_reason == REASON_LOW_CONFIDENCE,
            ),
        )
        .order_by(ledger.created_at, ledger.query_id)
    )


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    """`signals` (JSON text, migration 0006) as a dict; None on rows without it."""
    if row["signals"] is not None:
        row["signals"] = json.loads(row["signals"])
    return row


def open_ledger(url: str) -> Engine:
    """An engine on an existing ledger; clear errors for a bad URL, a missing file or table."""
    try:
        parsed = parse_url(url)
    except ValueError as error:
        raise LedgerError(str(error)) from None
    path = sqlite_path(parsed)
    if path is not None and not path.is_file():
        raise LedgerUnavailable(f"no ledger database at {path} (the SQLite file does not exist)")
    engine = make_engine(parsed)
    try:
        check_ledger_exists(engine)
    except LedgerError:
        engine.dispose()
        raise
    return engine


def read_feedback_rows(url: str) -> list[dict[str, Any]]:
    """Decided ledger rows with their latest feedback (``feedback_score``), oldest first."""
    engine = open_ledger(url)
    try:
        with engine.connect() as connection:
            rows = [_decoded(dict(row)) for row in connection.execute(_query()).mappings()]
    except exc.DBAPIError as error:
        raise LedgerUnavailable(unavailable_message(engine, error)) from error
    finally:
        engine.dispose()
    return rows
