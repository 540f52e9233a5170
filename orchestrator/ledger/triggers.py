"""Create, fill and maintain the dashboard rollups (the Alembic migration calls `create`).

PostgreSQL: one statement-level AFTER INSERT trigger per table runs the set-based statements
of `rollup_sql` over the transition table, so a ledger batch (one multi-row INSERT) costs one
aggregated upsert per rollup table.

SQLite has only row-level triggers, and running those statements once per row costs about
three times more than folding rows in batches. So a row trigger appends each new ledger row to
`dash_pending`; a second trigger, whose WHEN clause fires once `FOLD_ROWS` rows are pending,
folds them into the rollups set-based and empties the queue. Readers call `fold_pending()`
first, so the dashboard never lags. A batch migration that copies `ledger` or `feedback`
drops their triggers with the old table on SQLite: it must call `install_triggers` again.
"""

from __future__ import annotations

import sqlalchemy as sa

from orchestrator.ledger.rollup import (
    CONFIDENCE_TABLES,
    COUNTS_TABLES,
    LATENCY_TABLES,
    metadata,
)
from orchestrator.ledger.rollup_sql import (
    PENDING,
    SOURCE_COLUMNS,
    Dialect,
    feedback_statements,
    key_expressions,
    ledger_statements,
    stage_name,
)
from orchestrator.ledger.schema import ledger_table

QUEUE_TRIGGER = "spillway_dash_queue"
LEDGER_TRIGGER = "spillway_dash_on_ledger"
FEEDBACK_TRIGGER = "spillway_dash_on_feedback"
FOLD_ROWS = 5000
ROLLUP_LOCK_ID = 0x5350_4C57_4441_5348  # any 64-bit number, the same in every process

# SQLite only: the queue of rows to fold, and the folds' scratch tables.
pending_metadata = sa.MetaData()
pending_table = sa.Table(
    PENDING,
    pending_metadata,
    *(sa.Column(c.name, c.type) for c in ledger_table.columns if c.name in SOURCE_COLUMNS),
    *(sa.Column(name, sa.String()) for name in key_expressions(Dialect("sqlite"), "NEW")),
)
for _fine, _unit in (COUNTS_TABLES[0], CONFIDENCE_TABLES[0], LATENCY_TABLES[0]):
    sa.Table(
        stage_name(_fine), pending_metadata, *(sa.Column(c.name, c.type) for c in _fine.columns)
    )


def _sqlite_ddl() -> list[str]:
    dialect = Dialect("sqlite")
    keys = key_expressions(dialect, "NEW")
    columns = ", ".join([*SOURCE_COLUMNS, *keys])
    new_values = ", ".join([*(f"NEW.{c}" for c in SOURCE_COLUMNS), *keys.values()])
    fold = "".join(f"{s};\n" for s in fold_statements(dialect))
    # Feedback on a row still pending is counted when the row is folded, not twice.
    fresh = f"(SELECT NEW.query_id AS query_id, NEW.score AS score WHERE NEW.query_id NOT IN (SELECT query_id FROM {PENDING}))"  # noqa: E501
    return [
        f"CREATE TRIGGER {QUEUE_TRIGGER} AFTER INSERT ON ledger FOR EACH ROW BEGIN "
        f"INSERT INTO {PENDING} ({columns}) VALUES ({new_values}); END",
        f"CREATE TRIGGER {LEDGER_TRIGGER} AFTER INSERT ON ledger FOR EACH ROW "
        f"WHEN (SELECT max(rowid) FROM {PENDING}) >= {FOLD_ROWS} BEGIN\n{fold}END",
        f"CREATE TRIGGER {FEEDBACK_TRIGGER} AFTER INSERT ON feedback FOR EACH ROW BEGIN "
        + "".join(f"{s}; " for s in feedback_statements(dialect, fresh))
        + "END",
    ]


def _pg_ddl() -> list[str]:
    dialect = Dialect("postgresql")
    ddl = []
    for name, table, body in (
        (LEDGER_TRIGGER, "ledger", ledger_statements(dialect, "new_rows")),
        (FEEDBACK_TRIGGER, "feedback", feedback_statements(dialect, "new_rows")),
    ):
        # One writer at a time runs the rollup upserts: no lock-order deadlocks between them.
        statements = (
            f"  PERFORM pg_advisory_xact_lock({ROLLUP_LOCK_ID});\n" if table == "ledger" else ""
        )
        statements += "".join(f"  {statement};\n" for statement in body)
        ddl.append(
            f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$\n"
            f"BEGIN\n{statements}  RETURN NULL;\nEND\n$fn$"
        )
        ddl.append(
            f"CREATE TRIGGER {name} AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )
    return ddl


def fold_statements(dialect: Dialect) -> list[str]:
    return [*ledger_statements(dialect, PENDING), f"DELETE FROM {PENDING}"]


def _drop_ddl(dialect_name: str) -> list[str]:
    if dialect_name == "sqlite":
        names = (QUEUE_TRIGGER, LEDGER_TRIGGER, FEEDBACK_TRIGGER)
        return [f"DROP TRIGGER IF EXISTS {name}" for name in names]
    return [
        f"DROP TRIGGER IF EXISTS {LEDGER_TRIGGER} ON ledger",
        f"DROP TRIGGER IF EXISTS {FEEDBACK_TRIGGER} ON feedback",
        f"DROP FUNCTION IF EXISTS {LEDGER_TRIGGER}()",
        f"DROP FUNCTION IF EXISTS {FEEDBACK_TRIGGER}()",
    ]


def install_triggers(connection: sa.Connection) -> None:
    name = connection.dialect.name
    for statement in _drop_ddl(name) + (_sqlite_ddl() if name == "sqlite" else _pg_ddl()):
        connection.exec_driver_sql(statement)


def create_rollups(connection: sa.Connection) -> None:
    """Create the rollup tables and triggers, then aggregate the rows already stored."""
    metadata.create_all(connection)
    if connection.dialect.name == "sqlite":
        pending_metadata.create_all(connection)
    install_triggers(connection)  # on PostgreSQL this locks out writers until commit
    backfill(connection)


def drop_rollups(connection: sa.Connection) -> None:
    for statement in _drop_ddl(connection.dialect.name):
        connection.exec_driver_sql(statement)
    pending_metadata.drop_all(connection)
    metadata.drop_all(connection)


def backfill(connection: sa.Connection) -> None:
    """Aggregate every stored ledger row (and its feedback) into the rollup tables.
    Only correct while the rollups are empty (the migration) or truncated."""
    dialect = Dialect(connection.dialect.name)
    for statement in ledger_statements(dialect, "ledger", feedback_filter=False):
        connection.exec_driver_sql(statement)
    if dialect.name == "sqlite":
        connection.exec_driver_sql(f"DELETE FROM {PENDING}")


def fold_pending(engine: sa.Engine) -> None:
    """SQLite: fold rows queued since the last batch into the rollups (no-op elsewhere)."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        waiting = connection.exec_driver_sql(f"SELECT EXISTS (SELECT 1 FROM {PENDING})").scalar()
    if not waiting:
        return
    with engine.begin() as connection:
        for statement in fold_statements(Dialect("sqlite")):
            connection.exec_driver_sql(statement)


def triggers_present(connection: sa.Connection) -> bool:
    if connection.dialect.name == "sqlite":
        query = "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN (:a, :b)"
    else:
        query = "SELECT count(DISTINCT tgname) FROM pg_trigger WHERE tgname IN (:a, :b)"
    found = connection.execute(sa.text(query), {"a": LEDGER_TRIGGER, "b": FEEDBACK_TRIGGER})
    return found.scalar() == 2
