"""The cost and escalation dashboard: a page, JSON stats endpoints, and the rollup tables
that keep them fast at millions of ledger rows.

    app.include_router(dashboard_router(StatsSource(ledger_url), authorize=authenticate,
                                        policy=config.cascade))
"""

from __future__ import annotations

from orchestrator.dashboard.api import dashboard_router
from orchestrator.dashboard.source import StatsSource, threshold_lookup

__all__ = ["StatsSource", "dashboard_router", "threshold_lookup"]
