"""What the ledger journal costs the request path: the same service with `ledger.journal` on
and off, in one run, at a fixed open-loop rate, with the instant backend (so a request's time
is Spillway's own, not a model's).

Each round starts an instant backend and `spillway serve` (a fresh SQLite ledger) with the
journal on or off, warms it up, sends Poisson arrivals at `--rate` for
`--duration` seconds and stops it. Rounds alternate (on, off, on, off, ...) so drift of a shared
machine falls on both arms. Reports, per arm and per round: client latency p50/p99 (nearest
rank), requests, errors, ledger rows == answered and the journal's counters (rows, group
commits, seconds spent syncing); and the overhead of the journal: p50 and p99 of the "on" arm
minus the "off" arm, pooled, per pair of rounds (on, then off), and the median over pairs (a
pair disturbed by another job on the machine moves the median less than the pooled tail).

    .venv/bin/python bench/journal_cost.py --rounds 4 --duration 60 --rate 20 \
        --json-out bench/results/journal-cost.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from bench.load import (
    API_KEY,
    FAST_OVERRIDES,
    ledger_rows,
    percentile,
    run_load,
    warm_up,
)


def _round(journal: bool, args: argparse.Namespace) -> dict[str, Any]:
    """One service lifetime with the journal on or off: its latencies and ledger count."""
    from bench.load_service import service_for_load
    from tests.e2e.conftest import local_config_data, private_state

    state = Path(tempfile.mkdtemp(prefix="spillway-journal-cost-"))
    overrides: dict[str, Any] = {**FAST_OVERRIDES, "ledger": {"journal": journal}}
    overrides |= private_state(state)  # Ray's files and the journal outside the repo
    if args.router:
        overrides["router"] = local_config_data()["router"] | {"artifact": args.router}
    try:
        with service_for_load(overrides, "instant", None) as service:
            return asyncio.run(_measure(service.base_url, Path(service.ledger_path), args))
    finally:
        shutil.rmtree(state, ignore_errors=True)


async def _measure(base_url: str, ledger: Path, args: argparse.Namespace) -> dict[str, Any]:
    await warm_up(base_url, API_KEY)
    result = await run_load(
        base_url,
        API_KEY,
        duration_s=args.duration,
        max_requests=1_000_000,
        concurrency=args.concurrency,
        rate=args.rate,
    )
    answered = [o for o in result.outcomes if o.status == 200]
    ids = [o.query_id for o in answered if o.query_id]
    rows = await asyncio.to_thread(ledger_rows, ledger, ids)
    return {
        **_journal_counters(base_url),
        "latencies_ms": [o.latency_ms for o in answered],
        "requests": len(result.outcomes) + result.transport_errors,
        "errors": len(result.outcomes) - len(answered) + result.transport_errors,
        "answered": len(answered),
        "ledger_rows_of_answered": len(rows),
        "late_starts": result.late_starts,
    }


def _journal_counters(base_url: str) -> dict[str, float]:
    """The journal's row and group-commit counts from /metrics (0 with the journal off)."""
    text = httpx.get(f"{base_url}/metrics", timeout=30).text
    found = {}
    for name in ("rows_journaled", "batches_journaled", "write_journal_seconds"):
        match = re.search(rf"^spillway_ledger_{name}_total ([0-9.e+]+)$", text, re.MULTILINE)
        found[name] = float(match.group(1)) if match else 0.0
    return found


def _summary(latencies: list[float]) -> dict[str, float | None]:
    return {"p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)}


def report(rounds: list[tuple[bool, dict[str, Any]]]) -> dict[str, Any]:
    """Per-round and pooled client latencies of each arm, and the journal's overhead."""
    pooled: dict[str, list[float]] = {"on": [], "off": []}
    per_round = []
    for journal, measured in rounds:
        arm = "on" if journal else "off"
        latencies = measured.pop("latencies_ms")
        pooled[arm] += latencies
        per_round.append({"journal": arm, **measured, **_summary(latencies)})
    arms = {arm: {"requests": len(v), **_summary(v)} for arm, v in pooled.items()}
    overhead = {
        key: round(arms["on"][key] - arms["off"][key], 2)  # type: ignore[operator]
        for key in ("p50_ms", "p99_ms")
        if arms["on"][key] is not None and arms["off"][key] is not None
    }
    pairs = [
        {key: round(on[key] - off[key], 2) for key in ("p50_ms", "p99_ms")}
        for on, off in zip(per_round[0::2], per_round[1::2], strict=False)
    ]
    median_pair = {
        key: round(statistics.median(pair[key] for pair in pairs), 2) if pairs else None
        for key in ("p50_ms", "p99_ms")
    }
    return {
        "rounds": per_round,
        "arms": arms,
        "journal_overhead_ms": overhead,  # pooled rounds: on minus off
        "pair_overhead_ms": pairs,  # each "on" round minus the "off" round after it
        "median_pair_overhead_ms": median_pair,  # robust to one disturbed pair
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="service starts, alternating arms")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load a round")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--concurrency", type=int, default=32, help="most requests in flight")
    parser.add_argument("--router", help="router artifact (default: the test config's)")
    parser.add_argument("--json-out", help="also write the report here")
    args = parser.parse_args()
    rounds = [(i % 2 == 0, _round(i % 2 == 0, args)) for i in range(args.rounds)]
    text = json.dumps({"args": vars(args), **report(rounds)}, indent=2)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")


if __name__ == "__main__":
    main()
