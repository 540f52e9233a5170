"""Routes of per-tenant usage: GET /v1/stats/tenants (admin: every tenant's limits, spend and
refusals this month) and GET /v1/usage (any key: the caller's own line, nothing else)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request

from orchestrator.config.tenants import TenantSettings
from orchestrator.dashboard import stats_tenants
from orchestrator.dashboard.api import admin_check, stats_connection
from orchestrator.dashboard.source import StatsSource
from orchestrator.ledger.periods import month_bounds


def tenants_router(
    source: StatsSource,
    tenants: Sequence[TenantSettings],
    *,
    authorize: Callable[[Request], Any],
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> APIRouter:
    router = APIRouter()
    by_name = {t.name: t for t in tenants}

    def report(chosen: Sequence[TenantSettings]) -> dict[str, Any]:
        with stats_connection(source) as connection:
            return stats_tenants.usage(connection, chosen, month_bounds(now()))

    @router.get("/v1/stats/tenants", dependencies=[Depends(admin_check(authorize))])
    def all_tenants(tenant: str | None = None) -> dict[str, Any]:
        """Every configured tenant, or the one named (none when not configured)."""
        return report([t for t in tenants if not tenant or t.name == tenant])

    @router.get("/v1/usage")
    async def own_usage(request: Request) -> dict[str, Any]:
        caller = authorize(request)
        if inspect.isawaitable(caller):
            caller = await caller
        body = await asyncio.to_thread(report, [by_name[caller.name]])
        return {"month": body["month"], **body["tenants"][0]}

    return router
