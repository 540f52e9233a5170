# ruff: noqa: E501
"""Dashboard query latency at scale: p50/p95/max per stats endpoint on SQLite and PostgreSQL.

Method: a fresh ledger per backend, schema at revision 0001 (the ledger alone); `--rows`
synthetic rows over `--days` days generated inside the database (bench/dashboard_data.py);
then `upgrade head`, which creates the dashboard rollups and backfills them from the rows
(timed: what an existing ledger pays once). PostgreSQL gets an ANALYZE (autovacuum would
have run one on a ledger grown over time). Each endpoint is then called through the HTTP
layer (the FastAPI router in-process, JSON included) for every filter case below, `--runs`
times each, round-robin; p95 is over all calls of an endpoint. Caches are warm after the
first round, as on a dashboard in use.

    .venv/bin/python bench/dashboard_queries.py --rows 1000000 [--backends sqlite,postgresql]
        [--runs 10] [--workdir DIR --keep] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

DAY = timedelta(days=1)


def cases(end: Any) -> list[tuple[str, dict[str, str]]]:
    """(endpoint, parameters): all time, last 7 days, last 24 hours, one tenant, one route."""
    week = {"since": (end - 7 * DAY).isoformat()}
    day = {"since": (end - DAY).isoformat()}
    tenant, route = {"tenant": "tenant-2"}, {"route": "math"}
    common = [{}, week, day, tenant, route, {**week, **tenant, **route}]
    listing = [(name, params) for name in ("summary", "cost", "escalations", "router", "confidence", "latency") for params in common]  # fmt: skip
    listing += [
        ("whatif", {**p, "route": "math", "threshold": "0.7"}) for p in ({}, week, day, tenant)
    ]
    listing += [("expensive", p) for p in common] + [("latest-escalations", p) for p in common]
    listing += [("filters", {})]
    return listing


def make_client(url: str) -> Any:
    from fastapi import FastAPI
    from starlette.testclient import TestClient

    from orchestrator.dashboard import StatsSource, dashboard_router

    app = FastAPI()
    app.include_router(
        dashboard_router(StatsSource(url), authorize=lambda _: True, policy={"*": 0.6})
    )
    return TestClient(app)


def measure(url: str, runs: int, end: Any) -> dict[str, dict[str, float]]:
    client = make_client(url)
    timings: dict[str, list[float]] = {}
    for _ in range(runs):
        for name, params in cases(end):
            started = time.perf_counter()
            response = client.get(f"/v1/stats/{name}", params=params)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, response.text
            timings.setdefault(name, []).append(elapsed)
    return {name: summarize(values) for name, values in timings.items()}


def summarize(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "calls": len(values),
        "p50_ms": statistics.median(values),
        "p95_ms": p95,
        "max_ms": ordered[-1],
    }


def prepare(url: str, rows: int, days: int, reuse: bool) -> dict[str, Any]:
    import sqlalchemy as sa
    from dashboard_data import fill

    from orchestrator.ledger.engine import current_revision, make_engine, migrate

    engine = make_engine(url)
    info: dict[str, Any] = {}
    if reuse and current_revision(engine) is not None:
        migrate(engine)
        return info
    migrate(engine, "0001")
    started = time.perf_counter()
    fill(engine, rows, days)
    info["generate_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    migrate(engine)  # 0002: rollup tables, triggers, backfill
    info["rollup_backfill_s"] = round(time.perf_counter() - started, 1)
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
        for table in ("ledger", "dash_hourly", "dash_confidence", "dash_latency", "dash_top"):
            info[f"rows_{table}"] = connection.scalar(sa.text(f"SELECT count(*) FROM {table}"))
    engine.dispose()
    return info


def run_backend(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from dashboard_data import END

    server = None
    if backend == "sqlite":
        path = workdir / f"ledger-{args.rows}.db"
        url, reuse = f"sqlite:///{path}", args.keep and path.exists()
    elif args.pg_url:
        url, reuse = args.pg_url, args.keep
    else:
        from tests.postgres import start_server

        server = start_server(durable=False)
        url, reuse = server.create_database("dashboard_bench"), False
    print(f"{backend}: preparing {args.rows:,} rows", flush=True)
    try:
        info = prepare(url, args.rows, args.days, reuse)
        print(f"{backend}: {info}", flush=True)
        return {"backend": backend, **info, "endpoints": measure(url, args.runs, END)}
    finally:
        if server is not None:
            server.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--workdir", type=Path, help="where the SQLite file goes (default: a temp dir)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="reuse a ledger already generated there"
    )
    parser.add_argument(
        "--pg-url", help="an existing PostgreSQL database instead of a throwaway server"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spillway-dash-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = [run_backend(b, args, workdir) for b in args.backends.split(",")]
    if args.json:
        print(
            json.dumps(
                {"rows": args.rows, "days": args.days, "runs": args.runs, "results": results},
                indent=2,
            )
        )
        return
    for result in results:
        print(
            f"\n{result['backend']}  rows={args.rows:,}  "
            + "  ".join(f"{k}={v}" for k, v in result.items() if k not in ("backend", "endpoints"))
        )
        print(f"{'endpoint':<20}{'calls':>7}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
        for name, t in result["endpoints"].items():
            print(
                f"{name:<20}{t['calls']:>7}{t['p50_ms']:>10.1f}{t['p95_ms']:>10.1f}{t['max_ms']:>10.1f}"
            )


if __name__ == "__main__":
    main()
