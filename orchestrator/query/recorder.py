"""`QueryRecorder`: the end of every query's path, answered or refused: its ledger row, its
charge against the tenant's budget, and its Prometheus counts."""

from __future__ import annotations

import logging

from orchestrator.errors import SpillwayError
from orchestrator.ledger import Ledger
from orchestrator.query.admission import Admission
from orchestrator.query.metrics import observe_query
from orchestrator.query.trace import QueryTrace

__all__ = ["QueryRecorder"]

log = logging.getLogger("spillway.recorder")


class QueryRecorder:
    """Writes each query's one ledger row (through `QueryTrace.ledger_row`)."""

    def __init__(self, ledger: Ledger, admission: Admission):
        self._ledger = ledger
        self._admission = admission

    def record(self, trace: QueryTrace, *, status: int, error: SpillwayError | None = None) -> None:
        """Queue the row, charge the tenant, count the query. Never raises into the request
        path for metrics (the ledger's own queue never blocks; see ledger/writer.py)."""
        row = trace.ledger_row(status=status, error=error)
        self._ledger.record(row)
        self._admission.charge(row.tenant, row.cost_usd)
        try:
            observe_query(row)
        except Exception:  # metrics must never fail a query
            log.exception("could not update metrics for %s", trace.query_id)
