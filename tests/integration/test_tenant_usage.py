"""This month's spend and refusals per tenant, read from the ledger (SQLite and PostgreSQL):
what budgets are checked against and what the tenants panel shows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from orchestrator.config.tenants import TenantSettings
from orchestrator.dashboard import StatsSource
from orchestrator.dashboard.stats_tenants import monthly_spend, spend_reader, usage
from orchestrator.errors import TooManyRequests
from orchestrator.ledger import Ledger, LedgerRow
from orchestrator.ledger.periods import month_bounds
from orchestrator.query.admission import Admission
from tests import dashboard_sample as sample
from tests.postgres import database_url

__all__ = ["database_url"]  # fixture used by this module

MARCH = datetime(2025, 3, 1, tzinfo=UTC)
TENANTS = [
    TenantSettings(name="acme", api_keys=["ka"], monthly_budget_usd=Decimal("0.079")),
    TenantSettings(name="beta", api_keys=["kb"], requests_per_minute=5),
    TenantSettings(name="idle", api_keys=["ki"], monthly_budget_usd=Decimal("1")),
]


def row(query_id: str, at: datetime, tenant: str, *, cost: str = "0", code: str = "") -> LedgerRow:
    return LedgerRow(
        query_id=query_id,
        created_at=at,
        tenant=tenant,
        status="error" if code else "ok",
        http_status=429 if code else 200,
        error_type=code or None,
        model_requested="auto",
        cost_usd=Decimal(cost),
        baseline_cost_usd=Decimal(cost),
    )


@pytest.fixture
def source(database_url: str) -> StatsSource:
    with Ledger(database_url) as ledger:
        sample.seed(ledger, MARCH)  # acme spends 0.079 and beta 0.048 on March 1 and 2
        ledger.record(row("q-feb", MARCH - timedelta(hours=1), "acme", cost="1.5"))  # February
        ledger.record(row("q-r1", MARCH + timedelta(days=3), "beta", code="rate_limit_exceeded"))
        ledger.record(row("q-r2", MARCH + timedelta(days=4), "beta", code="rate_limit_exceeded"))
        ledger.record(row("q-r3", MARCH + timedelta(days=4), "acme", code="insufficient_quota"))
        ledger.record(row("q-r4", MARCH - timedelta(days=1), "acme", code="insufficient_quota"))
    return StatsSource(database_url)


def test_monthly_spend_and_the_panel(source: StatsSource) -> None:
    with source.connect() as connection:
        assert monthly_spend(connection, MARCH) == {
            "acme": Decimal("0.079"),
            "beta": Decimal("0.048"),
        }
        panel = usage(connection, TENANTS, month_bounds(MARCH + timedelta(days=10)))
    assert panel["month"] == {"since": "2025-03-01T00:00:00Z", "until": "2025-04-01T00:00:00Z"}
    lines = {line["tenant"]: line for line in panel["tenants"]}
    assert list(lines) == ["acme", "beta", "idle"]
    assert lines["acme"] == {
        "tenant": "acme",
        "admin": False,
        "requests_per_minute": None,
        "monthly_budget_usd": 0.079,
        "spent_usd": 0.079,
        "budget_used": 1.0,
        "queries": 7,  # six answered, one refused in March (February's two are not counted)
        "rejected": {"rate_limit": 0, "budget": 1},
    }
    assert lines["beta"]["spent_usd"] == 0.048 and lines["beta"]["budget_used"] is None
    assert lines["beta"]["rejected"] == {"rate_limit": 2, "budget": 0}
    assert lines["beta"]["queries"] == 6
    assert lines["idle"]["spent_usd"] == 0 and lines["idle"]["queries"] == 0


def test_budget_is_checked_against_the_ledger(source: StatsSource) -> None:
    admission = Admission(TENANTS, spend_reader(source), wall=lambda: MARCH + timedelta(days=5))
    with pytest.raises(TooManyRequests) as refused:
        asyncio.run(admission.admit(TENANTS[0]))  # acme spent exactly its budget
    assert refused.value.code == "insufficient_quota"
    assert "spent $0.079 since 2025-03-01" in refused.value.message
    asyncio.run(admission.admit(TENANTS[2]))  # idle spent nothing
    assert admission.spent("beta") == Decimal("0.048")
