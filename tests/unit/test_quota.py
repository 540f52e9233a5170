"""Rate limits and monthly budgets, with a fake clock and a fake ledger reader."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from orchestrator.config.tenants import TenantSettings
from orchestrator.errors import TooManyRequests
from orchestrator.ledger.periods import month_bounds
from orchestrator.query.admission import Admission, TokenBucket

NOW = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Reader:
    def __init__(self, spent: dict[str, Decimal]) -> None:
        self.spent, self.calls = spent, []  # type: list[datetime]

    def __call__(self, month: datetime) -> dict[str, Decimal]:
        self.calls.append(month)
        return dict(self.spent)


def tenant(name: str = "a", **limits: object) -> TenantSettings:
    return TenantSettings(name=name, api_keys=[f"key-{name}"], **limits)  # type: ignore[arg-type]


def refused(admission: Admission, who: TenantSettings) -> TooManyRequests:
    with pytest.raises(TooManyRequests) as info:
        asyncio.run(admission.admit(who))
    return info.value


def test_month_bounds() -> None:
    assert month_bounds(NOW) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    december = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert month_bounds(december)[1] == datetime(2027, 1, 1, tzinfo=UTC)


def test_token_bucket_refills_at_the_rate() -> None:
    bucket = TokenBucket(60, now=0.0)  # one a second, a burst of 60
    assert [bucket.take(0.0) for _ in range(60)] == [0.0] * 60
    assert bucket.take(0.0) == pytest.approx(1.0)
    assert bucket.take(0.5) == pytest.approx(0.5)
    assert bucket.take(1.0) == 0.0
    assert bucket.take(1000.0) == 0.0 and bucket.tokens == pytest.approx(59.0)  # capped
    with pytest.raises(ValueError, match="at least 1"):
        TokenBucket(0, now=0.0)


def test_rate_limit_per_tenant() -> None:
    clock = Clock()
    a, b = tenant("a", requests_per_minute=2), tenant("b", requests_per_minute=2)
    admission = Admission([a, b], None, clock=clock)
    asyncio.run(admission.admit(a))
    asyncio.run(admission.admit(a))
    error = refused(admission, a)
    assert (error.status, error.code, error.error_type) == (429, "rate_limit_exceeded", "requests")
    assert error.headers() == {"Retry-After": "30"}
    assert "2 requests per minute" in error.message and "'a'" in error.message
    asyncio.run(admission.admit(b))  # b has its own bucket
    clock.t += 30
    asyncio.run(admission.admit(a))


def test_no_limits_means_no_reads_and_no_refusals() -> None:
    reader = Reader({"a": Decimal("1e9")})
    admission = Admission([tenant("a")], reader)
    for _ in range(100):
        asyncio.run(admission.admit(tenant("a")))
    assert reader.calls == []


def test_budget_from_the_ledger_plus_local_charges() -> None:
    clock = Clock()
    a = tenant("a", monthly_budget_usd=Decimal("1.00"))
    b = tenant("b", monthly_budget_usd=Decimal("5"))
    reader = Reader({"a": Decimal("0.90"), "b": Decimal("5.00")})
    admission = Admission([a, b], reader, refresh_s=10, clock=clock, wall=lambda: NOW)
    asyncio.run(admission.admit(a))
    assert reader.calls == [datetime(2026, 11, 1, tzinfo=UTC)]
    error = refused(admission, b)
    assert (error.code, error.error_type) == ("insufficient_quota", "insufficient_quota")
    assert error.headers() == {"Retry-After": str(3600)}  # until 2026-12-01 00:00 UTC
    assert "monthly budget of $5" in error.message and "2026-12-01" in error.message
    admission.charge("a", Decimal("0.10"))
    assert admission.spent("a") == Decimal("1.00")
    assert refused(admission, a).code == "insufficient_quota"
    assert len(reader.calls) == 1  # within refresh_s: no new read
    reader.spent["a"] = Decimal("0.20")  # e.g. the budget month rolled, or rows were corrected
    clock.t += 10
    asyncio.run(admission.admit(a))
    assert len(reader.calls) == 2 and admission.spent("a") == Decimal("0.20")


def test_ledger_read_failure_keeps_serving() -> None:
    def broken(month: datetime) -> dict[str, Decimal]:
        raise OSError("database is down")

    clock = Clock()
    a = tenant("a", monthly_budget_usd=Decimal("1"))
    admission = Admission([a], broken, clock=clock, wall=lambda: NOW)
    asyncio.run(admission.admit(a))
    admission.charge("a", Decimal("2"))
    assert refused(admission, a).code == "insufficient_quota"  # local charges still count


def test_budget_is_checked_before_the_rate() -> None:
    a = tenant("a", monthly_budget_usd=Decimal("0"), requests_per_minute=1)
    admission = Admission([a], Reader({}), wall=lambda: NOW)
    assert refused(admission, a).code == "insufficient_quota"
    assert refused(admission, a).code == "insufficient_quota"  # no rate token was used


def test_a_new_month_starts_from_zero_even_when_the_ledger_is_down() -> None:
    now = [NOW]
    calls = []

    def reader(month: datetime) -> dict[str, Decimal]:
        calls.append(month)
        if len(calls) > 1:
            raise OSError("database is down")
        return {"a": Decimal("3")}

    a = tenant("a", monthly_budget_usd=Decimal("1"))
    admission = Admission([a], reader, wall=lambda: now[0])
    assert refused(admission, a).code == "insufficient_quota"
    now[0] = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)  # December: a new budget
    asyncio.run(admission.admit(a))
    assert calls[-1] == datetime(2026, 12, 1, tzinfo=UTC) and admission.spent("a") == 0
