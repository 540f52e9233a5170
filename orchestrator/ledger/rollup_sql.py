"""SQL that maintains the rollup tables (`rollup.py`): set-based statements over a source of
ledger rows, run by the triggers (`triggers.py`) and once over the whole ledger to backfill.

The same statements serve three sources:

- PostgreSQL: a statement-level AFTER INSERT trigger over the transition table `new_rows`, so
  one ledger batch (one multi-row INSERT) costs one aggregated upsert per rollup table;
- SQLite: the rows queued in `dash_pending`, folded every `FOLD_ROWS` rows and before reads;
- backfill: the `ledger` table itself, for databases that held rows before the migration.

Rows the ledger skips (`ON CONFLICT DO NOTHING` replays) fire no trigger on either backend,
so the rollups count every stored row exactly once. On PostgreSQL upserts are ordered by key,
so concurrent writers lock rollup rows in the same order and cannot deadlock.
"""

from __future__ import annotations

import sqlalchemy as sa

from orchestrator.ledger.rollup import (
    BIN_EPSILON,
    CONFIDENCE_BINS,
    CONFIDENCE_TABLES,
    COUNTS_TABLES,
    LATENCY_EDGES,
    LATENCY_TABLES,
    STAGES,
    TOP_K,
    key_columns,
    top_table,
)

SOURCE_COLUMNS = (
    "query_id", "created_at", "tenant", "status", "route", "adapter", "router_version",
    "confidence", "confidence_signal", "escalated", "escalation_reason",
    "small_prompt_tokens", "small_completion_tokens", "large_prompt_tokens",
    "large_completion_tokens", "cost_small_usd", "cost_large_usd", "cost_usd",
    "baseline_cost_usd", "latency_router_ms", "latency_small_ms", "latency_large_ms",
    "latency_total_ms",
)  # fmt: skip
UNITS = ("hour", "day", "month")


def small_confidence(alias: str) -> str:
    """Rows whose confidence scores a small-model answer (a pre-generation skip's
    `difficulty` confidence scores the query, not an answer)."""
    return (
        f"{alias}.confidence IS NOT NULL "
        f"AND coalesce({alias}.confidence_signal, '') <> 'difficulty'"
    )


def route_key_sql(alias: str) -> str:
    """The cascade route key: the adapter, else the router's label, else 'base'."""
    return (
        f"(CASE WHEN coalesce({alias}.adapter, '') <> '' THEN {alias}.adapter "
        f"WHEN coalesce({alias}.route, '') <> '' THEN {alias}.route ELSE 'base' END)"
    )


class Dialect:
    """The few expressions that differ between SQLite and PostgreSQL."""

    def __init__(self, name: str):
        if name not in ("sqlite", "postgresql"):
            raise ValueError(f"the dashboard supports sqlite and postgresql, not {name!r}")
        self.name = name

    def truncate(self, column: str, unit: str) -> str:
        """Start of the UTC hour, day or month, in the column's own storage format."""
        if self.name == "postgresql":
            return f"(date_trunc('{unit}', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"
        # SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff' (fixed width, UTC).
        prefix, suffix = {"hour": (13, ":00:00.000000"), "day": (10, " 00:00:00.000000")}.get(
            unit, (7, "-01 00:00:00.000000")
        )
        return f"(substr({column}, 1, {prefix}) || '{suffix}')"

    def confidence_bin(self, column: str) -> str:
        top, bins = CONFIDENCE_BINS - 1, CONFIDENCE_BINS
        if self.name == "postgresql":
            return f"LEAST({top}, floor({column} * {bins} + {BIN_EPSILON})::integer)"
        return f"min({top}, CAST({column} * {bins} + {BIN_EPSILON} AS INTEGER))"

    def latency_bin(self, column: str) -> str:
        """How many edges are <= the value (PostgreSQL's width_bucket; a binary CASE here)."""
        if self.name == "postgresql":
            edges = ", ".join(repr(edge) for edge in LATENCY_EDGES)
            return f"width_bucket({column}, ARRAY[{edges}]::double precision[])"
        return _binary_case(column, 0, len(LATENCY_EDGES))

    def lock_order(self, columns: int) -> str:
        """ORDER BY the key columns on PostgreSQL (writers lock rollup rows in one order);
        SQLite serializes writers and would only pay for the sort."""
        if self.name == "sqlite":
            return ""
        return "ORDER BY " + ", ".join(str(i) for i in range(1, columns + 1))

    def escalated_int(self, column: str) -> str:
        return f"(CASE WHEN {column} THEN 1 ELSE 0 END)"


def _binary_case(column: str, low: int, high: int) -> str:
    """Bin index in [low, high]: the number of LATENCY_EDGES <= value, by bisection."""
    if low == high:
        return str(low)
    middle = (low + high + 1) // 2  # value >= EDGES[middle-1] means bin >= middle
    edge = LATENCY_EDGES[middle - 1]
    below, above = _binary_case(column, low, middle - 1), _binary_case(column, middle, high)
    return f"(CASE WHEN {column} < {edge!r} THEN {below} ELSE {above} END)"


PENDING = "dash_pending"
"""SQLite's queue of ledger rows not yet folded; it stores the keys with each row."""


def key_expressions(dialect: Dialect, alias: str) -> dict[str, str]:
    """The rollup keys of a ledger row ('' for none), by the name sources carry them under."""
    keys = {f"k_{u}": dialect.truncate(f"{alias}.created_at", u) for u in UNITS}
    keys["k_route"] = f"coalesce({alias}.route, '')"
    keys["k_adapter"] = f"coalesce({alias}.adapter, '')"
    keys["k_key"] = route_key_sql(alias)
    return keys


def keyed_source(dialect: Dialect, source: str) -> str:
    """The source rows with their rollup keys (SQLite's queue has them already)."""
    if source == PENDING:
        return PENDING
    keys = ", ".join(f"{sql} AS {name}" for name, sql in key_expressions(dialect, "s").items())
    return f"(SELECT s.*, {keys} FROM {source} AS s WHERE true)"


def _upsert(table: sa.Table, select: str) -> str:
    """INSERT the select's rows (key columns, then value columns, in table order), adding
    the values to rows already there."""
    keys = key_columns(table)
    values = [c.name for c in table.columns if c.name not in keys]
    updates = ", ".join(f"{v} = {table.name}.{v} + excluded.{v}" for v in values)
    columns = ", ".join([*keys, *values])
    return (
        f"INSERT INTO {table.name} ({columns}) {select} "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


def stage_name(table: sa.Table) -> str:
    """SQLite's scratch table for one fold's aggregate of `table`'s family."""
    return f"dash_stage_{table.name.removeprefix('dash_')}"


def two_levels(
    dialect: Dialect, delta: str, fine: sa.Table, coarse: sa.Table, unit: str
) -> list[str]:
    """Upsert the source's aggregate `delta` (a SELECT of `fine`'s columns, fine buckets)
    into `fine`, and the same aggregate summed by `unit` into `coarse`: the source rows are
    grouped once. PostgreSQL does it in one statement (a data-modifying CTE); SQLite, whose
    triggers allow no CTEs, through a scratch table emptied at the end."""
    keys = key_columns(fine)
    values = [c.name for c in fine.columns if c.name not in keys]
    order = dialect.lock_order(len(keys))
    groups = ", ".join(str(i) for i in range(1, len(keys) + 1))

    def rollup_from(name: str) -> str:
        coarse_keys = [dialect.truncate(f"d.{keys[0]}", unit), *(f"d.{k}" for k in keys[1:])]
        sums = [f"sum(d.{v})" for v in values]
        columns = ", ".join(coarse_keys + sums)
        return f"SELECT {columns} FROM {name} AS d WHERE true GROUP BY {groups} {order}"

    if dialect.name == "postgresql":
        fine_part = _upsert(fine, f"SELECT * FROM delta {order}")
        coarse_part = _upsert(coarse, rollup_from("delta"))
        names = ", ".join(keys + values)
        return [f"WITH delta ({names}) AS ({delta}), fine AS ({fine_part}) {coarse_part}"]
    stage = stage_name(fine)
    return [
        f"INSERT INTO {stage} ({', '.join(keys + values)}) {delta}",
        _upsert(fine, f"SELECT {', '.join(keys + values)} FROM {stage} WHERE true"),
        _upsert(coarse, rollup_from(stage)),
        f"DELETE FROM {stage}",
    ]


COUNT_SUMS = (
    "cost_usd", "baseline_cost_usd", "cost_small_usd", "cost_large_usd",
    "small_prompt_tokens", "small_completion_tokens", "large_prompt_tokens",
    "large_completion_tokens",
)  # fmt: skip


def counts_delta(dialect: Dialect, source: str) -> str:
    return (
        "SELECT k_hour, tenant, k_route, k_adapter, coalesce(router_version, ''), status, "
        "escalated, coalesce(escalation_reason, ''), count(*), count(confidence), "
        + ", ".join(f"sum({name})" for name in COUNT_SUMS)
        + f" FROM {keyed_source(dialect, source)} AS k WHERE true GROUP BY 1, 2, 3, 4, 5, 6, 7, 8"
    )


def confidence_delta(dialect: Dialect, source: str, *, feedback_filter: bool = True) -> str:
    esc = dialect.escalated_int("k.escalated")
    where = f" WHERE query_id IN (SELECT query_id FROM {source} AS q)" if feedback_filter else ""
    feedback = (
        "(SELECT query_id, count(*) AS n, sum(score) AS score FROM feedback"
        f"{where} GROUP BY query_id)"
    )
    return (
        f"SELECT k_day, tenant, k_key, {dialect.confidence_bin('k.confidence')}, "
        f"count(*), sum({esc}), sum(k.cost_usd), sum(k.cost_small_usd), "
        "sum(k.baseline_cost_usd), "
        f"sum((1 - {esc}) * coalesce(f.n, 0)), sum((1 - {esc}) * coalesce(f.score, 0)), "
        f"sum({esc} * coalesce(f.n, 0)), sum({esc} * coalesce(f.score, 0)) "
        f"FROM {keyed_source(dialect, source)} AS k "
        f"LEFT JOIN {feedback} AS f ON f.query_id = k.query_id "
        f"WHERE {small_confidence('k')} GROUP BY 1, 2, 3, 4"
    )


def latency_delta(dialect: Dialect, source: str) -> str:
    keyed = keyed_source(dialect, source)
    unpivot = " UNION ALL ".join(
        f"SELECT k_day AS b, tenant, k_key, '{stage}' AS stage, latency_{stage}_ms AS ms "
        f"FROM {keyed} AS k{i} WHERE latency_{stage}_ms IS NOT NULL"
        for i, stage in enumerate(STAGES)
    )
    return (
        f"SELECT b, tenant, k_key, stage, {dialect.latency_bin('u.ms')}, count(*), sum(u.ms) "
        f"FROM ({unpivot}) AS u WHERE true GROUP BY 1, 2, 3, 4, 5"
    )


def top_statements(dialect: Dialect, source: str) -> list[str]:
    """Add the source's top K per group, then drop what falls past K in the days it touched:
    one window over those days' kept rows (K per group), not a probe per candidate."""
    table = top_table.name
    keyed = keyed_source(dialect, source)
    rowid = "ctid" if dialect.name == "postgresql" else "rowid"
    candidates = (
        "SELECT k_day, tenant, k_key, query_id, cost_usd, row_number() OVER "
        "(PARTITION BY k_day, tenant, k_key ORDER BY cost_usd DESC, query_id) "
        f"AS rn FROM {keyed} AS k WHERE true"
    )
    insert = (
        f"INSERT INTO {table} (bucket, tenant, route, query_id, cost_usd) "
        f"SELECT k_day, tenant, k_key, query_id, cost_usd FROM ({candidates}) AS c "
        f"WHERE c.rn <= {TOP_K} {dialect.lock_order(4)} ON CONFLICT DO NOTHING"
    )
    ranked = (
        f"SELECT {rowid} AS id, row_number() OVER (PARTITION BY bucket, tenant, route "
        f"ORDER BY cost_usd DESC, query_id) AS rn FROM {table} "
        f"WHERE bucket >= (SELECT min(k_day) FROM {keyed} AS g)"
    )
    past_k = f"SELECT id FROM ({ranked}) AS r WHERE r.rn > {TOP_K}"
    prune = f"DELETE FROM {table} WHERE {rowid} IN ({past_k})"
    return [insert, prune]


def ledger_statements(dialect: Dialect, source: str, *, feedback_filter: bool = True) -> list[str]:
    """Everything a set of new ledger rows changes, in order. `feedback_filter=False` joins
    all feedback without first selecting the source's query ids (for the whole ledger)."""
    (hourly, _), (daily, day) = COUNTS_TABLES
    (conf_daily, _), (conf_monthly, month) = CONFIDENCE_TABLES
    (latency_daily, _), (latency_monthly, _) = LATENCY_TABLES
    conf = confidence_delta(dialect, source, feedback_filter=feedback_filter)
    return [
        *two_levels(dialect, counts_delta(dialect, source), hourly, daily, day),
        *two_levels(dialect, conf, conf_daily, conf_monthly, month),
        *two_levels(dialect, latency_delta(dialect, source), latency_daily, latency_monthly, month),
        *top_statements(dialect, source),
    ]


def feedback_statements(dialect: Dialect, source: str) -> list[str]:
    """Add new feedback to the confidence bins of its query (if that row is stored already;
    otherwise the ledger trigger picks the feedback up when the row arrives)."""
    esc = dialect.escalated_int("l.escalated")
    statements = []
    for table, unit in CONFIDENCE_TABLES:
        aggregated = (
            f"SELECT {dialect.truncate('l.created_at', unit)} AS bucket, l.tenant AS tenant, "
            f"{route_key_sql('l')} AS route, {dialect.confidence_bin('l.confidence')} AS bin, "
            f"sum(1 - {esc}) AS sn, sum((1 - {esc}) * f.score) AS ss, "
            f"sum({esc}) AS ln, sum({esc} * f.score) AS ls "
            f"FROM {source} AS f JOIN ledger AS l ON l.query_id = f.query_id "
            f"WHERE {small_confidence('l')} GROUP BY 1, 2, 3, 4"
        )
        match = " AND ".join(f"{table.name}.{k} = x.{k}" for k in key_columns(table))
        statements.append(
            f"UPDATE {table.name} SET fb_small_n = fb_small_n + x.sn, "
            "fb_small_score = fb_small_score + x.ss, fb_large_n = fb_large_n + x.ln, "
            f"fb_large_score = fb_large_score + x.ls FROM ({aggregated}) AS x WHERE {match}"
        )
    return statements
