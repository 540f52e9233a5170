"""Reading the ledger: one row by query id, or a time range streamed in keyset-paged chunks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator.ledger.schema import UTCDateTime, feedback_table, ledger_table

CHUNK_ROWS = 5000


def require_aware(name: str, value: datetime | None) -> None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, e.g. datetime(..., tzinfo=timezone.utc)")


def fetch_row(engine: Engine, query_id: str) -> dict[str, Any] | None:
    query = sa.select(ledger_table).where(ledger_table.c.query_id == query_id)
    with engine.connect() as connection:
        found = connection.execute(query).mappings().first()
    return dict(found) if found is not None else None


def iter_rows(
    engine: Engine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    tenant: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[dict[str, Any]]:
    """Rows with since <= created_at < until (either bound optional), oldest first.

    Each chunk is its own short query resuming after the last (created_at, query_id) seen, so
    no transaction stays open while the caller writes its output, and memory stays bounded.
    """
    require_aware("since", since)
    require_aware("until", until)
    table = ledger_table
    base = sa.select(table).order_by(table.c.created_at, table.c.query_id).limit(chunk_rows)
    if since is not None:
        base = base.where(table.c.created_at >= since)
    if until is not None:
        base = base.where(table.c.created_at < until)
    if tenant is not None:
        base = base.where(table.c.tenant == tenant)
    after: tuple[datetime, str] | None = None
    while True:
        query = base
        if after is not None:
            query = query.where(
                sa.tuple_(table.c.created_at, table.c.query_id)
                > sa.tuple_(
                    sa.literal(after[0], type_=UTCDateTime()), sa.literal(after[1], sa.String())
                )
            )
        with engine.connect() as connection:
            chunk = [dict(row) for row in connection.execute(query).mappings()]
        yield from chunk
        if len(chunk) < chunk_rows:
            return
        after = (chunk[-1]["created_at"], chunk[-1]["query_id"])


def count_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(sa.select(sa.func.count()).select_from(ledger_table)) or 0)


def fetch_feedback(engine: Engine, query_id: str) -> list[dict[str, Any]]:
    query = (
        sa.select(feedback_table)
        .where(feedback_table.c.query_id == query_id)
        .order_by(feedback_table.c.id)
    )
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def insert_feedback(engine: Engine, values: dict[str, Any]) -> int:
    with engine.begin() as connection:
        result = connection.execute(sa.insert(feedback_table).values(**values))
        key = result.inserted_primary_key
    assert key is not None
    return int(key[0])
