"""Admission of requests: the caller's API key names its tenant (`KeyTable`); a tenant's chat
requests are then held to a request rate limit and a monthly budget (`Admission`).

Both are checked after authentication and before the request body is read, so a refused
request runs no model; it still gets its ledger row (status 429) like every request.

- Rate: a token bucket per tenant holding `requests_per_minute` tokens, refilled at that rate.
  Its state lives in the ingress replica, so the limit applies per replica.
- Budget: spent = the tenant's ledger cost since the start of the calendar month (UTC), read
  from the ledger's rollups every `refresh_s` seconds (all replicas' spend), plus what this
  replica has charged since the last read. A request is refused once spent >= budget; the
  query in flight when the budget runs out completes, so spend may overshoot by what the
  replicas answer within one refresh interval.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from orchestrator.config.tenants import TenantSettings
from orchestrator.errors import TooManyRequests, Unauthorized
from orchestrator.ledger.periods import month_bounds

__all__ = ["Admission", "KeyTable", "SpendReader", "TokenBucket"]

log = logging.getLogger("spillway.admission")
SpendReader = Callable[[datetime], Mapping[str, Decimal]]
"""month start (UTC) -> {tenant: cost in USD since then}, from the ledger."""
REFRESH_S = 10.0


class KeyTable:
    """API key -> tenant. Only SHA-256 digests of the keys are held (see config.tenants)."""

    def __init__(self, tenants_by_digest: Mapping[str, TenantSettings]):
        self._tenants = dict(tenants_by_digest)

    def tenant(self, key: str) -> TenantSettings:
        """The key's tenant; 401 for an empty or unknown key (the key is never echoed)."""
        if not key.strip():
            raise Unauthorized(
                "Missing API key: send it as 'Authorization: Bearer <key>'.",
                code="missing_api_key",
            )
        tenant = self._tenants.get(hashlib.sha256(key.strip().encode()).hexdigest())
        if tenant is None:
            raise Unauthorized("Incorrect API key provided.")
        return tenant


class TokenBucket:
    """Holds up to `per_minute` tokens, refilled at `per_minute` a minute; a request takes one."""

    def __init__(self, per_minute: int, now: float):
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, got {per_minute}")
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.tokens = self.capacity
        self.updated = now

    def take(self, now: float) -> float:
        """Take a token: 0.0 when one was there, else the seconds until one will be."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class Admission:
    """Rate limits and budgets of all tenants, for one ingress replica."""

    def __init__(
        self,
        tenants: Sequence[TenantSettings],
        spend_reader: SpendReader | None,
        *,
        refresh_s: float = REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self._tenants = {t.name: t for t in tenants}
        self._reader = spend_reader
        self._refresh_s = refresh_s
        self._clock, self._wall = clock, wall
        self._spent = {name: Decimal(0) for name in self._tenants}
        self._buckets: dict[str, TokenBucket] = {}
        self._month: datetime | None = None
        self._read_at: float | None = None
        self._lock = asyncio.Lock()
        self._budgets = any(t.monthly_budget_usd is not None for t in tenants)

    # ----- the check ------------------------------------------------------------------------
    async def admit(self, tenant: TenantSettings) -> None:
        """Raise TooManyRequests (429) when the tenant is over its budget or rate limit."""
        if tenant.monthly_budget_usd is not None:
            await self.refresh()
            self._check_budget(tenant, tenant.monthly_budget_usd)
        if tenant.requests_per_minute is not None:
            self._check_rate(tenant, tenant.requests_per_minute)

    def _check_budget(self, tenant: TenantSettings, budget: Decimal) -> None:
        spent = self._spent[tenant.name]
        if spent < budget:
            return
        start, end = month_bounds(self._wall())
        wait = math.ceil((end - self._wall()).total_seconds())
        raise TooManyRequests(
            f"Tenant {tenant.name!r} has used its monthly budget of ${budget} (spent "
            f"${spent.normalize():f} since {start:%Y-%m-%d} UTC). Requests are refused "
            f"until the budget resets on {end:%Y-%m-%d} 00:00 UTC or is raised.",
            code="insufficient_quota",
            retry_after_s=wait,
        )

    def _check_rate(self, tenant: TenantSettings, per_minute: int) -> None:
        now = self._clock()
        bucket = self._buckets.get(tenant.name)
        if bucket is None or bucket.capacity != per_minute:
            bucket = self._buckets[tenant.name] = TokenBucket(per_minute, now)
        wait = bucket.take(now)
        if wait == 0.0:
            return
        raise TooManyRequests(
            f"Rate limit reached for tenant {tenant.name!r}: {per_minute} requests per minute. "
            f"Retry in {wait:.1f} s.",
            code="rate_limit_exceeded",
            retry_after_s=math.ceil(wait),
        )

    # ----- spend ----------------------------------------------------------------------------
    def charge(self, tenant: str, cost: Decimal) -> None:
        """Count a settled query's cost until the next ledger read includes it."""
        if tenant in self._spent and cost:
            self._spent[tenant] += cost

    async def refresh(self, *, force: bool = False) -> None:
        """Re-read this month's spend from the ledger when the last read is older than
        `refresh_s` (or the month changed). One read at a time; a failed read keeps the
        current figures and is retried after `refresh_s`."""
        if self._reader is None or not self._budgets:
            return
        month, _ = month_bounds(self._wall())
        now = self._clock()
        due = self._read_at is None or now - self._read_at >= self._refresh_s
        if not (force or due or month != self._month):
            return
        if self._lock.locked() and self._read_at is not None:
            return  # another request is reading; use the current figures
        async with self._lock:
            try:
                spent = await asyncio.to_thread(self._reader, month)
            except Exception as exc:  # the ledger may be down: keep serving on what we know
                log.warning("could not read this month's spend from the ledger: %s", exc)
                spent = None
            self._read_at = self._clock()
            if spent is not None:
                self._apply(month, spent)
            elif month != self._month:  # a new month starts from zero, even unread
                self._apply(month, {})

    def _apply(self, month: datetime, spent: Mapping[str, Decimal]) -> None:
        self._month = month
        self._spent = {name: Decimal(spent.get(name, 0)) for name in self._tenants}

    def spent(self, tenant: str) -> Decimal:
        """This month's spend as this replica knows it."""
        return self._spent[tenant]
