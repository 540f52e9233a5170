"""Reading a rollup family at two levels: whole coarse buckets from the coarse table, the
ragged ends of the range from the fine one. Both tables hold the same rows summed over
different buckets, so the union of the pieces is exactly the range, and a long range costs
about one coarse row per group and coarse bucket instead of one per fine bucket.

    [since ......|=========== whole days ===========|...... until)
     hourly rows        daily rows                    hourly rows
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from orchestrator.dashboard.scope import Scope, ceil_unit, floor_unit

Level = tuple[sa.Table, str]  # (table, bucket unit)


@dataclass(frozen=True)
class Piece:
    table: sa.Table
    since: datetime | None
    until: datetime | None


def pieces(levels: Sequence[Level], since: datetime | None, until: datetime | None) -> list[Piece]:
    """Split [since, until) (aligned to the fine unit) between a fine and a coarse level."""
    fine = levels[0][0]
    if len(levels) == 1:
        return [Piece(fine, since, until)]
    coarse, unit = levels[1]
    start = ceil_unit(since, unit) if since is not None else None
    end = floor_unit(until, unit) if until is not None else None
    if start is not None and end is not None and start >= end:
        return [Piece(fine, since, until)]
    parts = [Piece(coarse, start, end)]
    if since is not None and start is not None and since < start:
        parts.append(Piece(fine, since, start))
    if until is not None and end is not None and end < until:
        parts.append(Piece(fine, end, until))
    return parts


def rollup_rows(levels: Sequence[Level], scope: Scope, columns: Sequence[str]) -> Any:
    """A subquery of `bucket` and `columns` over the scope (snapped to the fine unit), read
    from as few rollup rows as the two levels allow, filtered by tenant and route."""
    selects = []
    for piece in pieces(levels, scope.since, scope.until):
        table = piece.table
        window = Scope(piece.since, piece.until)
        selects.append(
            sa.select(table.c.bucket, *(table.c[name] for name in columns)).where(
                *window.between(table.c.bucket), *scope.filters(table)
            )
        )
    if len(selects) == 1:
        return selects[0].subquery("r")
    return sa.union_all(*selects).subquery("r")
