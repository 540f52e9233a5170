"""The ledger's billing period: the calendar month, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["month_bounds"]


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """Start of `now`'s calendar month (UTC) and of the next one."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if start.month == 12:
        return start, start.replace(year=start.year + 1, month=1)
    return start, start.replace(month=start.month + 1)
