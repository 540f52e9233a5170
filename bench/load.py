"""Sustained concurrent load on Spillway over loopback, then a count of the ledger.

Starts `spillway serve` itself (the local tiny-model config with a fresh SQLite ledger, exactly
as tests/e2e does) or attaches to a running service with --url. `--concurrency` workers send
chat completions (mixed domains, `model=auto`, few tokens) until --duration seconds have passed
or --requests have been sent, whichever comes first. Then it reports:

- throughput, client latency p50/p99, errors by status;
- ledger completeness: every query id a response carried has its row (rows == requests);
- "overhead": client latency minus the router, small and large times the ledger row records,
  and the ingress-internal part; it subtracts time the client waits for (bench/peers.py).

With --rate the load is open-loop instead: requests arrive at that rate (Poisson) whatever the
answers do, the way independent users send them, so latency is measured at a known throughput
below saturation rather than with every engine's queue full. --requests-csv writes one line per
request (when sent, latency, backend and ingress times). Commands: BENCHMARKS.md, `--help`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import random
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PROMPTS = [
    "Can my landlord keep my security deposit after the lease ended?",
    "What is the usual dose of ibuprofen for an adult with a headache?",
    "How do I reverse a list in Python without changing the original?",
    "What is the capital of France?",
    "Is a verbal contract binding in small claims court?",
    "What are the early symptoms of the flu?",
    "Write a SQL query that counts rows per day.",
    "How tall is Mount Everest?",
]
API_KEY = "sk-spillway-local"
FAST_OVERRIDES: dict[str, Any] = {"limits": {"default_max_tokens": 8, "max_tokens_limit": 64}}


@dataclass
class Outcome:
    """One request as the client saw it."""

    status: int
    latency_ms: float
    query_id: str | None
    sent_at: float = 0.0  # time.monotonic() when it was sent


@dataclass
class LoadResult:
    outcomes: list[Outcome] = field(default_factory=list)
    transport_errors: int = 0
    wall_s: float = 0.0
    probe_ms: list[float] = field(default_factory=list)
    late_starts: int = 0


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 100]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _chat_body(prompt: str, model: str = "auto") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 8}


async def _send(client: httpx.AsyncClient, i: int, result: LoadResult, model: str) -> None:
    """One chat completion (prompt `i` of PROMPTS, cycling), recorded in `result`."""
    body = {**_chat_body(PROMPTS[i % len(PROMPTS)], model), "temperature": 0}
    sent_at, started = time.monotonic(), time.perf_counter()
    try:
        response = await client.post("/v1/chat/completions", json=body)
    except httpx.HTTPError:
        result.transport_errors += 1
        return
    elapsed = (time.perf_counter() - started) * 1000.0
    qid = response.headers.get("x-spillway-query-id")
    result.outcomes.append(Outcome(response.status_code, elapsed, qid, sent_at))


Send = Callable[[int], Awaitable[None]]  # send request number i and record it


async def _worker(send: Send, worker: int, stop_at: float, budget: list[int]) -> None:
    i = worker
    while time.monotonic() < stop_at and budget[0] > 0:
        budget[0] -= 1
        await send(i)
        i += 1


async def _arrivals(
    send: Send, rate: float, cap: int, stop_at: float, budget: list[int], result: LoadResult
) -> None:
    """Open loop: requests arrive at `rate` per second (Poisson, seeded), whatever the answers
    do, with at most `cap` in flight; an arrival that finds `cap` in flight waits for a slot
    and is counted in `result.late_starts`."""
    arrival = random.Random(0)
    slots = asyncio.Semaphore(cap)
    tasks: set[asyncio.Task[None]] = set()
    next_at, i = time.monotonic(), 0

    async def one(index: int) -> None:
        try:
            await send(index)
        finally:
            slots.release()

    while budget[0] > 0:
        next_at += arrival.expovariate(rate)
        if next_at >= stop_at:
            break
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        if slots.locked():
            result.late_starts += 1
        await slots.acquire()
        budget[0] -= 1
        task = asyncio.create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        i += 1
    await asyncio.gather(*tasks)


async def _probe(base_url: str, stop_at: float, result: LoadResult) -> None:
    """GET /healthz twice a second on its own connection: the cost of the HTTP proxy and the
    ingress replica hop alone (no body, no backend), under the same load."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            response = await client.get("/healthz")
            if response.status_code == 200:
                result.probe_ms.append((time.perf_counter() - started) * 1000.0)
            await asyncio.sleep(0.5)


async def warm_up(base_url: str, api_key: str, *, deadline_s: float = 600.0) -> int:
    """Send one request at a time until one of each prompt has been answered (the engines'
    first generations compile CPU kernels and can take minutes on a loaded machine).
    Returns how many were sent; raises TimeoutError past the deadline."""
    headers = {"Authorization": f"Bearer {api_key}"}
    stop_at = time.monotonic() + deadline_s
    sent, answered = 0, 0
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=deadline_s) as client:
        while answered < len(PROMPTS):
            if time.monotonic() > stop_at:
                raise TimeoutError(f"no warm service after {deadline_s:.0f} s ({sent} requests)")
            sent += 1
            response = await client.post("/v1/chat/completions", json=_chat_body(PROMPTS[answered]))
            answered += response.status_code == 200
    return sent


async def run_load(
    base_url: str,
    api_key: str,
    *,
    duration_s: float,
    max_requests: int,
    concurrency: int,
    rate: float | None = None,
    model: str = "auto",
    probe: bool = True,
) -> LoadResult:
    """Closed-loop load: `concurrency` workers, each sending its next request on an answer;
    with `rate`, open-loop arrivals at that rate instead, at most `concurrency` in flight.
    Every request names `model`; `probe` also GETs /healthz twice a second (Spillway only)."""
    result = LoadResult()
    budget = [max_requests]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=180.0
    ) as client:
        started = time.monotonic()
        stop_at = started + duration_s

        def send(i: int) -> Awaitable[None]:
            return _send(client, i, result, model)

        if rate is None:
            senders = [_worker(send, w, stop_at, budget) for w in range(concurrency)]
        else:
            senders = [_arrivals(send, rate, concurrency, stop_at, budget, result)]
        probing = asyncio.create_task(_probe(base_url, stop_at, result)) if probe else None
        await asyncio.gather(*senders)
        result.wall_s = time.monotonic() - started
        if probing is not None:
            probing.cancel()
    return result


def ledger_rows(ledger: Path, query_ids: list[str], wait_s: float = 60.0) -> dict[str, tuple]:
    """Rows for the given ids; waits for the ledger writer to flush its queue."""
    deadline = time.monotonic() + wait_s
    wanted = set(query_ids)
    rows: dict[str, tuple] = {}
    while True:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
            cursor = db.execute(
                "SELECT query_id, latency_router_ms, latency_small_ms, latency_large_ms, "
                "latency_total_ms FROM ledger"
            )
            rows = {r[0]: r[1:] for r in cursor if r[0] in wanted}
        if len(rows) == len(wanted) or time.monotonic() > deadline:
            return rows
        time.sleep(1.0)


def backend_ms(row: tuple) -> float:
    """A ledger row's backend time: router + small + large, each timed at the ingress around
    its deployment-handle call (row as `ledger_rows` reads it)."""
    return float(sum(v or 0.0 for v in row[:3]))


def summarize(result: LoadResult, rows: dict[str, tuple]) -> dict[str, Any]:
    ok = [o for o in result.outcomes if o.status == 200]
    errors: dict[str, int] = {}
    for o in result.outcomes:
        if o.status != 200:
            errors[str(o.status)] = errors.get(str(o.status), 0) + 1
    if result.transport_errors:
        errors["transport"] = result.transport_errors
    overhead, internal, with_router = [], [], []
    for o in ok:
        row = rows.get(o.query_id or "")
        if row is None:
            continue
        backend = backend_ms(row)
        overhead.append(o.latency_ms - backend)
        internal.append((row[3] or 0.0) - backend)
        with_router.append(o.latency_ms - backend + (row[0] or 0.0))
    ids = [o.query_id for o in result.outcomes if o.query_id]
    latencies = [o.latency_ms for o in ok]
    return {
        "requests": len(result.outcomes) + result.transport_errors,
        "ok": len(ok),
        "errors": errors,
        "wall_s": round(result.wall_s, 1),
        "throughput_rps": round(len(result.outcomes) / result.wall_s, 2) if result.wall_s else 0,
        "latency_ms": _stats(latencies),
        "overhead_ms": _stats(overhead),
        "ingress_internal_ms": _stats(internal),
        "overhead_with_router_ms": _stats(with_router),  # the router's hop and inference too
        "healthz_probe_ms": _stats(result.probe_ms),
        "late_starts": result.late_starts,
        "ledger": {
            "ids_returned": len(ids),
            "rows_found": len(rows),
            "missing": sorted(set(ids) - set(rows))[:20],
            "complete": len(ids) == len(rows) == len(result.outcomes) + result.transport_errors,
        },
    }


def write_requests_csv(path: Path, result: LoadResult, rows: dict[str, tuple]) -> None:
    """One line per request: when it was sent (s from the first), status, client latency and
    the ledger's backend and ingress times, to see when slow requests happened."""
    first = min((o.sent_at for o in result.outcomes), default=0.0)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            ["sent_s", "status", "latency_ms", "backend_ms", "router_ms", "total_ms", "query_id"]
        )
        for o in sorted(result.outcomes, key=lambda o: o.sent_at):
            row = rows.get(o.query_id or "")
            backend, router, total = (backend_ms(row), row[0], row[3]) if row else (None,) * 3
            sent = f"{o.sent_at - first:.3f}"
            latency = f"{o.latency_ms:.2f}"
            writer.writerow([sent, o.status, latency, backend, router, total, o.query_id])


def _stats(values: list[float]) -> dict[str, float | None]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 2)

    return {"p50": r(percentile(values, 50)), "p99": r(percentile(values, 99)), "n": len(values)}


def _load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="attach to a running Spillway instead of starting one")
    parser.add_argument("--ledger", help="its SQLite ledger file (with --url)")
    parser.add_argument("--key", default=API_KEY)
    parser.add_argument("--duration", type=float, default=330.0, help="seconds of traffic")
    parser.add_argument("--requests", type=int, default=100_000, help="most requests sent")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="closed-loop workers; with --rate, the most requests in flight",
    )
    parser.add_argument(
        "--rate",
        type=float,
        help="open loop: this many requests per second (Poisson arrivals) whatever the "
        "answers do, instead of closed-loop workers; pick it below the closed-loop throughput",
    )
    parser.add_argument("--json-out", help="also write the report here")
    parser.add_argument("--requests-csv", help="also write one line per request here")
    parser.add_argument(
        "--engine-cores",
        help="bind both engines to these CPUs (e.g. '0'), leaving the others to Ray's proxy, "
        "the ingress and the router; default: local.yaml's binding (a core per engine)",
    )
    parser.add_argument(
        "--backend",
        choices=["vllm", "instant"],
        default="vllm",
        help="vllm: local.yaml's tiny models on vLLM (default); instant: an OpenAI-compatible "
        "server that answers at once (bench/instant_backend.py), to measure Spillway alone",
    )
    parser.add_argument(
        "--http-server",
        choices=["ingress", "serve_proxy"],
        help="server.http_server for the started service (default: local.yaml's, ingress)",
    )
    args = parser.parse_args()
    if args.url and not args.ledger:
        parser.error("--url needs --ledger (the SQLite file to count rows in)")
    if args.backend == "instant" and (args.url or args.engine_cores):
        parser.error("--backend instant starts its own service and has no engines")
    if args.url:
        args.backend = "attached"
    report = asyncio.run(_main(args)) if args.url else _with_service(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")


def _with_service(args: argparse.Namespace) -> dict[str, Any]:
    # `python bench/load.py` puts bench/, not the repo, on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.load_service import service_for_load

    how = (args.backend, args.engine_cores, args.http_server)
    with service_for_load(FAST_OVERRIDES, *how) as service:
        args.url, args.ledger = service.base_url, str(service.ledger_path)
        return asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    warmup_sent = await warm_up(args.url, args.key)
    load_before, ticks_before = _load_average(), _cpu_ticks()
    result = await run_load(
        args.url,
        args.key,
        duration_s=args.duration,
        max_requests=args.requests,
        concurrency=args.concurrency,
        rate=args.rate,
    )
    (busy_now, total_now), (busy_then, total_then) = _cpu_ticks(), ticks_before
    busy, total = busy_now - busy_then, total_now - total_then
    ids = [o.query_id for o in result.outcomes if o.query_id]
    rows = await asyncio.to_thread(ledger_rows, Path(args.ledger), ids)
    report = summarize(result, rows)
    if args.requests_csv:
        write_requests_csv(Path(args.requests_csv), result, rows)
    report["warmup_requests"] = warmup_sent
    report["concurrency"] = args.concurrency
    report["rate"] = args.rate
    report["engine_cores"] = getattr(args, "engine_cores", None)
    report["backend"] = args.backend
    report["http_server"] = args.http_server  # None: local.yaml's (ingress)
    report["load_average_before"] = load_before
    report["load_average_after"] = _load_average()
    report["cpu_busy_during_load"] = round(busy / total, 3) if total else None  # all processes
    return report


if __name__ == "__main__":
    main()
