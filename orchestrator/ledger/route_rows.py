"""Reading what the router did for each query, with the route feedback corrected, for
`spillway router train --from-ledger`.

One dict per answered query (status ``ok``) the router labelled (``route`` set):
``query_id``, ``tenant``, ``query_text`` (None unless the tenant keeps query text),
``route`` (the router's top label), ``route_probability``, ``router_version`` and
``corrected_route``: the ``route`` of the latest feedback on the query that carries one
(None when no feedback corrected it).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from orchestrator.ledger.engine import unavailable_message
from orchestrator.ledger.errors import LedgerUnavailable
from orchestrator.ledger.feedback_rows import open_ledger
from orchestrator.ledger.schema import feedback_table, ledger_table

__all__ = ["read_route_rows"]


def _query() -> sa.Select[Any]:
    feedback = feedback_table.c
    latest = (
        sa.select(sa.func.max(feedback.id).label("id"))
        .where(feedback.route.is_not(None))
        .group_by(feedback.query_id)
        .subquery()
    )
    corrected = (
        sa.select(feedback.query_id, feedback.route.label("corrected_route"))
        .join(latest, feedback.id == latest.c.id)
        .subquery()
    )
    ledger = ledger_table.c
    return (
        sa.select(
            ledger.query_id,
            ledger.tenant,
            ledger.query_text,
            ledger.route,
            ledger.route_probability,
            ledger.router_version,
            corrected.c.corrected_route,
        )
        .select_from(ledger_table.outerjoin(corrected, corrected.c.query_id == ledger.query_id))
        .where(ledger.status == "ok", ledger.route.is_not(None))
        .order_by(ledger.created_at, ledger.query_id)
    )


def read_route_rows(url: str) -> list[dict[str, Any]]:
    """Routed ledger rows with their corrected route (if any), oldest first."""
    engine = open_ledger(url)
    try:
        with engine.connect() as connection:
            return [dict(row) for row in connection.execute(_query()).mappings()]
    except exc.DBAPIError as error:
        raise LedgerUnavailable(unavailable_message(engine, error)) from error
    finally:
        engine.dispose()
