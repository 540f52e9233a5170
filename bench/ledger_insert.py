"""Sustained ledger insert rate on SQLite and PostgreSQL.

Method: for each backend and run, a fresh database; `Ledger(batch_size=500)` started (schema
migrated); `--threads` producer threads call `record()` as fast as they can with pre-built,
varied rows (`--rows` in all), then `close()` waits until every row is committed. The rate is
rows / (first record() .. close() returned), i.e. rows durably in the database per second,
with the queue always full: the writer's sustained throughput. Also reported: the time a
`record()` call takes (what the request path pays), p50 and p99 over every call, and the
client process's CPU time per row (rows per CPU-second: robust to other load on the machine;
for PostgreSQL it excludes the server's own CPU). `--revision 0001` stops the schema at that
migration (to tell the ledger's own cost from, e.g., triggers later migrations add).
SQLite runs as the ledger configures it (WAL, synchronous=NORMAL); PostgreSQL is a local
server with durable defaults (fsync on, synchronous_commit on), started from Debian's
packages by tests/postgres.py unless `--pg-url` names one.

    .venv/bin/python bench/ledger_insert.py [--rows 50000] [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def make_rows(count: int, seed: int) -> list[Any]:
    from orchestrator.ledger import LedgerRow

    start = datetime(2025, 1, 1, tzinfo=UTC)
    routes = ["legal", "medical", "code", "general"]
    rows = []
    for i in range(count):
        escalated = i % 5 == 0
        small = Decimal(40 + i % 97) * Decimal("0.0000001")
        large = Decimal(60 + i % 89) * Decimal("0.0000009") if escalated else Decimal(0)
        rows.append(
            LedgerRow(
                query_id=f"bench-{seed}-{i}",
                created_at=start + timedelta(milliseconds=37 * i),
                tenant=f"tenant-{i % 7}",
                status="ok" if i % 50 else "error",
                http_status=200 if i % 50 else 503,
                model_requested="auto",
                stream=bool(i % 3 == 0),
                route=routes[i % 4],
                route_probability=0.5 + (i % 50) / 100,
                router_version="router-v1",
                adapter=routes[i % 4] if i % 4 != 3 else None,
                answered_by="spillway-large" if escalated else "spillway-small",
                confidence=(i % 100) / 100,
                confidence_signal="mean_prob",
                threshold=0.5,
                escalated=escalated,
                escalation_reason="low_confidence" if escalated else None,
                small_prompt_tokens=40 + i % 97,
                small_completion_tokens=20 + i % 31,
                large_prompt_tokens=40 + i % 97 if escalated else 0,
                large_completion_tokens=20 + i % 29 if escalated else 0,
                cost_small_usd=small,
                cost_large_usd=large,
                cost_usd=small + large,
                baseline_cost_usd=Decimal(60 + i % 89) * Decimal("0.0000009"),
                latency_router_ms=1.0 + i % 3,
                latency_small_ms=50.0 + i % 40,
                latency_large_ms=300.0 + i % 90 if escalated else None,
                latency_total_ms=60.0 + i % 400,
            )
        )
    return rows


def one_run(url: str, rows: list[Any], threads: int) -> tuple[float, float, list[float]]:
    """Returns (rows per second, rows per client CPU-second, record() call durations)."""
    from orchestrator.ledger import Ledger

    ledger = Ledger(url, batch_size=500)
    ledger.start()
    parts = [rows[t::threads] for t in range(threads)]
    timings: list[list[float]] = [[] for _ in range(threads)]
    gate = threading.Barrier(threads + 1)

    def produce(t: int) -> None:
        clock, out, record = time.perf_counter, timings[t], ledger.record
        gate.wait()
        for row in parts[t]:
            began = clock()
            record(row)
            out.append(clock() - began)

    workers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    gate.wait()
    began, cpu_began = time.perf_counter(), time.process_time()
    for worker in workers:
        worker.join()
    if not ledger.close(timeout=600):
        raise SystemExit(f"the ledger did not write every row: {ledger.stats}")
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    if ledger.stats.rows_written != len(rows):
        raise SystemExit(f"expected {len(rows)} rows written, got {ledger.stats}")
    return len(rows) / elapsed, len(rows) / cpu, [d for part in timings for d in part]


def bench_backend(name: str, new_url: Any, args: argparse.Namespace) -> dict[str, Any]:
    rates: list[float] = []
    cpu_rates: list[float] = []
    calls: list[float] = []
    for run in range(args.runs):
        rows = make_rows(args.rows, seed=run)
        rate, cpu_rate, durations = one_run(new_url(run), rows, args.threads)
        rates.append(rate)
        cpu_rates.append(cpu_rate)
        calls.extend(durations)
        load = os.getloadavg()[0]
        print(f"  {name} run {run + 1}: {rate:,.0f} rows/s (load {load:.1f})", file=sys.stderr)
    calls.sort()
    return {
        "backend": name,
        "rows": args.rows,
        "runs": args.runs,
        "median_rows_per_s": statistics.median(rates),
        "min_rows_per_s": min(rates),
        "max_rows_per_s": max(rates),
        "median_rows_per_cpu_s": statistics.median(cpu_rates),
        "record_p50_us": calls[len(calls) // 2] * 1e6,
        "record_p99_us": calls[int(len(calls) * 0.99)] * 1e6,
    }


def print_table(results: list[dict[str, Any]]) -> None:
    header = f"{'backend':<10} {'rows':>7} {'runs':>4} {'median rows/s':>14} {'min':>8} {'max':>8}"
    print(header + f" {'rows/CPU-s':>11} {'record() p50':>13} {'p99':>8}")
    for r in results:
        print(
            f"{r['backend']:<10} {r['rows']:>7} {r['runs']:>4} {r['median_rows_per_s']:>14,.0f} "
            f"{r['min_rows_per_s']:>8,.0f} {r['max_rows_per_s']:>8,.0f} "
            f"{r['median_rows_per_cpu_s']:>11,.0f} "
            f"{r['record_p50_us']:>10.1f} µs {r['record_p99_us']:>5.1f} µs"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="rows per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4, help="producer threads")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--pg-url", help="an existing PostgreSQL server's URL (database 'postgres')"
    )
    parser.add_argument("--revision", default="head", help="schema revision to migrate to")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))  # for tests.postgres, the throwaway server
    from orchestrator.ledger import writer
    from orchestrator.ledger.engine import head_revision, migrate

    revision = head_revision() if args.revision == "head" else args.revision
    writer.migrate = lambda engine: migrate(engine, revision)  # type: ignore[assignment]

    results = []
    with tempfile.TemporaryDirectory(prefix="spillway-bench-") as tmp:
        if "sqlite" in args.backends:
            results.append(
                bench_backend("sqlite", lambda run: f"sqlite:///{tmp}/ledger-{run}.db", args)
            )
        if "postgres" in args.backends:
            results.append(bench_postgres(args))
    if args.json:
        print(json.dumps({"schema_revision": revision, "results": results}, indent=2))
    else:
        print(f"schema revision {revision}; {args.threads} producer threads; batch 500")
        print_table(results)


def bench_postgres(args: argparse.Namespace) -> dict[str, Any]:
    import psycopg
    import sqlalchemy as sa

    from tests.postgres import start_server

    server = None
    if args.pg_url:
        base = sa.make_url(args.pg_url)
    else:
        server = start_server(durable=True)
        base = sa.make_url(server.url())
    try:

        def new_database(run: int) -> str:
            name = f"bench_{int(time.time())}_{run}"
            dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
            with psycopg.connect(dsn, autocommit=True) as connection:
                connection.execute(f'CREATE DATABASE "{name}"')
            return base.set(database=name).render_as_string(hide_password=False)

        return bench_backend("postgres", new_database, args)
    finally:
        if server is not None:
            server.destroy()


if __name__ == "__main__":
    main()
