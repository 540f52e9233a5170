"""Per-tenant usage this calendar month: spend and queries (from the counts rollups, so the
cost does not grow with the ledger), and requests refused with 429 by rate limit or budget
(from the ledger, a range of this month's rows on the (tenant, created_at) index)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from orchestrator.config.tenants import TenantSettings
from orchestrator.dashboard.levels import rollup_rows
from orchestrator.dashboard.scope import Scope, iso
from orchestrator.dashboard.source import StatsSource
from orchestrator.ledger.rollup import COUNTS_TABLES
from orchestrator.ledger.schema import UTCDateTime, ledger_table

REJECTION_CODES = {"rate_limit_exceeded": "rate_limit", "insufficient_quota": "budget"}


def monthly_spend(connection: sa.Connection, since: datetime) -> dict[str, Decimal]:
    """{tenant: cost in USD since `since` (a UTC month start)}."""
    return {name: cost for name, (cost, _) in _sums(connection, since).items()}


def _sums(connection: sa.Connection, since: datetime) -> dict[str, tuple[Decimal, int]]:
    r = rollup_rows(COUNTS_TABLES, Scope(since=since), ("tenant", "cost_usd", "queries"))
    query = sa.select(r.c.tenant, sa.func.sum(r.c.cost_usd), sa.func.sum(r.c.queries))
    rows = connection.execute(query.group_by(r.c.tenant))
    return {row[0]: (Decimal(row[1] or 0), int(row[2] or 0)) for row in rows}


def rejections(
    connection: sa.Connection, since: datetime, tenants: Sequence[str]
) -> dict[str, dict[str, int]]:
    """{tenant: {"rate_limit": n, "budget": n}}: 429s since `since`."""
    table = ledger_table
    query = (
        sa.select(table.c.tenant, table.c.error_type, sa.func.count())
        .where(
            table.c.tenant.in_(list(tenants)),
            table.c.created_at >= sa.literal(since, type_=UTCDateTime()),
            table.c.http_status == 429,
        )
        .group_by(table.c.tenant, table.c.error_type)
    )
    found: dict[str, dict[str, int]] = {name: dict.fromkeys(REJECTION_CODES.values(), 0)
                                        for name in tenants}  # fmt: skip
    for tenant, code, count in connection.execute(query):
        kind = REJECTION_CODES.get(code or "")
        if kind is not None:
            found[tenant][kind] += int(count)
    return found


def usage(
    connection: sa.Connection,
    tenants: Sequence[TenantSettings],
    month: tuple[datetime, datetime],
) -> dict[str, Any]:
    """The tenants panel: limits, this month's spend and queries, refusals."""
    since, until = month
    sums = _sums(connection, since)
    refused = rejections(connection, since, [t.name for t in tenants])
    rows = []
    for tenant in tenants:
        cost, queries = sums.get(tenant.name, (Decimal(0), 0))
        budget = tenant.monthly_budget_usd
        rows.append(
            {
                "tenant": tenant.name,
                "admin": tenant.admin,
                "requests_per_minute": tenant.requests_per_minute,
                "monthly_budget_usd": float(budget) if budget is not None else None,
                "spent_usd": round(float(cost), 10),
                "budget_used": round(float(cost / budget), 6) if budget else None,
                "queries": queries,
                "rejected": refused[tenant.name],
            }
        )
    return {"month": {"since": iso(since), "until": iso(until)}, "tenants": rows}


def spend_reader(source: StatsSource) -> Callable[[datetime], dict[str, Decimal]]:
    """A `quota.SpendReader` over the ledger's rollups."""

    def read(since: datetime) -> dict[str, Decimal]:
        with source.connect() as connection:
            return monthly_spend(connection, since)

    return read
