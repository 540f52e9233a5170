"""What a stats request asks about: a time range, a tenant, a route; and how that becomes a
WHERE clause over a rollup table whose buckets are hours or days.

Ranges snap outward to whole buckets (an hour for the hourly rollup, a UTC day for the
daily ones), and every response says which range it covers. A *route* here is the cascade's
route key, the one thresholds are set for: the adapter when one served the query, else the
router's label, else `base` (`cascade.policy` and `QueryService.decide` use the same key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from orchestrator.errors import InvalidRequest

BASE_ROUTE = "base"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def route_key(table: sa.Table | Any) -> sa.ColumnElement[str]:
    """SQL for the cascade route key of a rollup row ('' columns mean none)."""
    return sa.case(
        (table.c.adapter != "", table.c.adapter),
        (table.c.route != "", table.c.route),
        else_=sa.literal(BASE_ROUTE),
    )


def as_utc(value: datetime | None) -> datetime | None:
    """Naive datetimes are taken as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)


def floor_to(value: datetime, step: timedelta) -> datetime:
    if step == DAY:
        return value.replace(hour=0, minute=0, second=0, microsecond=0)
    return value.replace(minute=0, second=0, microsecond=0)


def ceil_to(value: datetime, step: timedelta) -> datetime:
    floored = floor_to(value, step)
    return floored if floored == value else floored + step


@dataclass(frozen=True)
class Scope:
    """Filters of one stats request. `since` is inclusive, `until` exclusive; None is open."""

    since: datetime | None = None
    until: datetime | None = None
    tenant: str | None = None
    route: str | None = None

    @classmethod
    def parse(
        cls,
        since: datetime | None,
        until: datetime | None,
        tenant: str | None,
        route: str | None,
    ) -> Scope:
        since, until = as_utc(since), as_utc(until)
        if since is not None and until is not None and since >= until:
            raise InvalidRequest("since must be earlier than until", param="since")
        return cls(since, until, tenant or None, route or None)

    def snapped(self, step: timedelta) -> Scope:
        """The smallest range of whole buckets covering this one."""
        since = floor_to(self.since, step) if self.since is not None else None
        until = ceil_to(self.until, step) if self.until is not None else None
        return Scope(since, until, self.tenant, self.route)

    def where(self, table: sa.Table, bucket: str) -> list[sa.ColumnElement[bool]]:
        """Conditions on a rollup table (call on a snapped scope)."""
        column = table.c[bucket]
        conditions: list[sa.ColumnElement[bool]] = []
        if self.since is not None:
            conditions.append(column >= self.since)
        if self.until is not None:
            conditions.append(column < self.until)
        if self.tenant is not None:
            conditions.append(table.c.tenant == self.tenant)
        if self.route is not None:
            conditions.append(route_key(table) == self.route)
        return conditions

    def describe(self) -> dict[str, Any]:
        return {
            "since": iso(self.since),
            "until": iso(self.until),
            "tenant": self.tenant,
            "route": self.route,
        }


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None
