"""What a stats request asks about: a time range, a tenant, a route; time buckets.

Ranges snap outward to whole buckets of the finest table a panel reads (an hour for counts,
a UTC day for histograms and lists), and every response says which range it covers. A
*route* here is the cascade's route key, the one thresholds are set for: the adapter when
one served the query, else the router's label, else `base` (as `QueryService.decide`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

BASE_ROUTE = "base"
HOUR = timedelta(hours=1)


def floor_unit(value: datetime, unit: str) -> datetime:
    """Start of the UTC hour, day or month holding `value`."""
    value = value.replace(minute=0, second=0, microsecond=0)
    if unit == "hour":
        return value
    value = value.replace(hour=0)
    return value if unit == "day" else value.replace(day=1)


def next_unit(value: datetime, unit: str) -> datetime:
    """Start of the bucket after the one starting at `value`."""
    if unit == "hour":
        return value + HOUR
    if unit == "day":
        return value + timedelta(days=1)
    return (
        value.replace(year=value.year + 1, month=1)
        if value.month == 12
        else value.replace(month=value.month + 1)
    )


def ceil_unit(value: datetime, unit: str) -> datetime:
    floored = floor_unit(value, unit)
    return floored if floored == value else next_unit(floored, unit)


def route_key(table: Any) -> sa.ColumnElement[str]:
    """SQL for the cascade route key of a counts rollup row ('' columns mean none)."""
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


class ScopeError(ValueError):
    """A filter that cannot be used; `param` names it (the HTTP routes make it a 400)."""

    def __init__(self, message: str, *, param: str):
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True)
class Scope:
    """Filters of one stats request. `since` is inclusive, `until` exclusive; None is open."""

    since: datetime | None = None
    until: datetime | None = None
    tenant: str | None = None
    route: str | None = None

    @classmethod
    def parse(
        cls, since: datetime | None, until: datetime | None, tenant: str | None, route: str | None
    ) -> Scope:
        since, until = as_utc(since), as_utc(until)
        if since is not None and until is not None and since >= until:
            raise ScopeError("since must be earlier than until", param="since")
        return cls(since, until, tenant or None, route or None)

    def snapped(self, unit: str) -> Scope:
        """The smallest range of whole buckets covering this one."""
        since = floor_unit(self.since, unit) if self.since is not None else None
        until = ceil_unit(self.until, unit) if self.until is not None else None
        return Scope(since, until, self.tenant, self.route)

    def filters(self, table: Any) -> list[sa.ColumnElement[bool]]:
        """Tenant and route conditions on a rollup table (or a subquery of one)."""
        conditions: list[sa.ColumnElement[bool]] = []
        if self.tenant is not None:
            conditions.append(table.c.tenant == self.tenant)
        if self.route is not None:
            key = route_key(table) if "adapter" in table.c else table.c.route
            conditions.append(key == self.route)
        return conditions

    def between(self, column: Any) -> list[sa.ColumnElement[bool]]:
        conditions: list[sa.ColumnElement[bool]] = []
        if self.since is not None:
            conditions.append(column >= self.since)
        if self.until is not None:
            conditions.append(column < self.until)
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
