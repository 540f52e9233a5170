"""Spillway beside LiteLLM's proxy and the backend itself, as a client sees them.

One instant backend (bench/instant_backend.py: OpenAI's wire format, answers at once) serves
every path, so a request's time is the path's own:

- `direct`: the client calls the backend (model `spillway-large`);
- `litellm`: LiteLLM's proxy (pinned, in a bench-only venv: bench/litellm_peer.py, one worker,
  its defaults) forwards to it;
- `spillway-named`: `spillway serve` on local.yaml with the remote backend, `model:
  spillway-large` (no router, no cascade);
- `spillway-auto`: the same service, `model: auto` (router, small model, cascade; about a
  quarter of the prompts escalate to the large model);
- `spillway-named-hops`, `spillway-auto-hops` (not in the default `--paths`): a second service
  with the router and both models' clients in deployments of their own (`placement:
  deployment`, the layout before the ingress held them), to see what the hops cost in the
  same run.

The same client (load.py's async httpx loop), prompts and body (`max_tokens: 8`,
`temperature: 0`) for all. Open-loop Poisson arrivals at each `--rates` value for `--duration`
seconds per path, then closed-loop saturation (`--workers` clients, each sending on an answer);
the paths run one after another within a round, in an order rotated every round, and rounds
repeat `--repeats` times, so the machine's drift falls on all paths alike. Reported: per path and
rate, the median over rounds of the client's p50 / p90 / p99, the time added over `direct` (each
round's difference, then the median), errors, and for Spillway that every answered query has
its ledger row. The load average is recorded with every segment.

    .venv/bin/python bench/peers.py --json-out bench/results/peers.json

LiteLLM is installed on first use under `--venvs` (default .spillway/bench-venvs); when it cannot
be installed its rows are skipped with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from bench import instant_backend, litellm_peer
from bench.load import API_KEY, FAST_OVERRIDES, ledger_rows, percentile, run_load

REPO = Path(__file__).resolve().parent.parent
PATHS = (
    "direct",
    "litellm",
    "spillway-named",
    "spillway-auto",
    "spillway-named-hops",
    "spillway-auto-hops",
)
DEFAULT_PATHS = PATHS[:4]
HOPS = {  # every part in a deployment of its own
    "router": {"placement": "deployment"},
    "small": {"placement": "deployment", "num_cpus": 0.25},
    "large": {"placement": "deployment", "num_cpus": 0.25},
}
NAMED_MODEL = instant_backend.LARGE_MODEL


@dataclass(frozen=True)
class Peer:
    """Where one path's requests go and which model they name."""

    name: str
    base_url: str
    model: str
    ledger: Path | None = None  # Spillway's SQLite ledger, to count rows


def spillway_overrides(backend_url: str, state_dir: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """local.yaml with the instant backend behind the remote backend and private state."""
    from bench.load_service import instant_models
    from tests.e2e.conftest import LOCAL_CONFIG, local_config_data

    data = local_config_data(LOCAL_CONFIG)
    server = data["server"] | {"state_dir": str(state_dir)}
    overrides = {**FAST_OVERRIDES, "router": data["router"], "server": server}
    return _merged(overrides | instant_models(backend_url, LOCAL_CONFIG), extra)


def _merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra`'s values, merged into nested sections rather than replacing them."""
    out = dict(base)
    for key, value in extra.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else value
    return out


@contextmanager
def started_peers(args: argparse.Namespace) -> Iterator[list[Peer]]:
    """Every path asked for, running until the block ends."""
    from tests.e2e.conftest import LOCAL_CONFIG, free_port, start_service, stop_service

    with ExitStack() as stack:
        backend_v1 = stack.enter_context(instant_backend.running(free_port()))
        backend_root = backend_v1.removesuffix("/v1")
        peers = [Peer("direct", backend_root, NAMED_MODEL)]
        if "litellm" in args.paths:
            try:
                exe = litellm_peer.ensure_litellm(Path(args.venvs))
                url = stack.enter_context(
                    litellm_peer.running_proxy(exe, backend_v1, NAMED_MODEL, free_port())
                )
                peers.append(Peer("litellm", url, NAMED_MODEL))
            except litellm_peer.PeerUnavailable as why:
                print(f"peers: skipping LiteLLM: {why}", file=sys.stderr, flush=True)
        extra = json.loads(args.spillway_overrides) if args.spillway_overrides else {}
        for suffix, layout in (("", extra), ("-hops", _merged(extra, HOPS))):
            names = {f"spillway-named{suffix}": NAMED_MODEL, f"spillway-auto{suffix}": "auto"}
            if not set(names) & set(args.paths):
                continue
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="spillway-peers-")))
            overrides = spillway_overrides(backend_v1, tmp / "state", layout)
            service, proc = start_service(tmp, overrides, LOCAL_CONFIG)
            stack.callback(stop_service, proc)
            for name, model in names.items():
                peers.append(Peer(name, service.base_url, model, service.ledger_path))
        yield [p for p in peers if p.name in args.paths]


def measure(peer: Peer, rate: float | None, args: argparse.Namespace) -> dict[str, Any]:
    """One segment: open loop at `rate`, or closed loop with `args.workers` when None."""
    load_before = _load_average()
    result = asyncio.run(
        run_load(
            peer.base_url,
            API_KEY,
            duration_s=args.duration if rate is not None else args.saturation_duration,
            max_requests=1_000_000,
            concurrency=args.in_flight if rate is not None else args.workers,
            rate=rate,
            model=peer.model,
            probe=False,
        )
    )
    ok = [o.latency_ms for o in result.outcomes if o.status == 200]
    return {
        "path": peer.name,
        "rate": rate,
        "requests": len(result.outcomes) + result.transport_errors,
        "errors": len(result.outcomes) - len(ok) + result.transport_errors,
        "throughput_rps": round(len(result.outcomes) / result.wall_s, 1) if result.wall_s else 0,
        **{f"p{q}_ms": _r(percentile(ok, q)) for q in (50, 90, 99)},
        "late_starts": result.late_starts,
        "load_average": [load_before, _load_average()],
        "query_ids": [o.query_id for o in result.outcomes if o.query_id and o.status == 200],
    }


def rounds(peers: list[Peer], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every segment, interleaved: per round, per rate (then saturation), each path once, in
    an order rotated by round and rate."""
    segments = []
    warm = argparse.Namespace(**{**vars(args), "saturation_duration": args.warmup})
    for peer in peers:  # first requests open connections and fill caches: not measured
        measure(peer, None, warm)
    rates: list[float | None] = [*args.rates, None] if args.saturation_duration > 0 else args.rates
    for round_no in range(args.repeats):
        for rate_no, rate in enumerate(rates):
            shift = (round_no + rate_no) % len(peers)
            for peer in peers[shift:] + peers[:shift]:
                segment = measure(peer, rate, args) | {"round": round_no}
                _progress(segment)
                segments.append(segment)
    return segments


def ledger_check(peers: list[Peer], segments: list[dict[str, Any]]) -> dict[str, Any]:
    """For Spillway's paths: every answered query id has its ledger row."""
    checks = {}
    for peer in peers:
        if peer.ledger is None:
            continue
        ids = [i for s in segments if s["path"] == peer.name for i in s["query_ids"]]
        rows = ledger_rows(peer.ledger, ids)
        checks[peer.name] = {
            "answered": len(ids),
            "rows": len(rows),
            "complete": len(rows) == len(ids),
            # what the ingress timed (router, small, large, whole request), p50 / p99 ms
            **{
                f"{stage}_ms": [_r(percentile(times, q)) for q in (50, 99)]
                for stage, times in _stage_times(rows.values()).items()
            },
        }
    return checks


def _stage_times(rows: Any) -> dict[str, list[float]]:
    stages: dict[str, list[float]] = {"router": [], "small": [], "large": [], "total": []}
    for row in rows:
        for stage, value in zip(stages, row, strict=True):
            if value is not None:
                stages[stage].append(value)
    return stages


def summarize(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per rate and path: medians over rounds, and the median of each round's difference to
    `direct` in the same round."""
    table = []
    keys = sorted({(s["rate"] is None, s["rate"] or 0.0, s["path"]) for s in segments})
    for saturated, rate, path in sorted(keys, key=lambda k: (k[0], k[1], PATHS.index(k[2]))):
        mine = [s for s in segments if s["path"] == path and (s["rate"] is None) == saturated]
        mine = [s for s in mine if saturated or s["rate"] == rate]
        row: dict[str, Any] = {"rate": None if saturated else rate, "path": path}
        row["rounds"] = len(mine)
        row["errors"] = sum(s["errors"] for s in mine)
        row["requests"] = sum(s["requests"] for s in mine)
        for key in ("p50_ms", "p90_ms", "p99_ms", "throughput_rps"):
            row[key] = _median([s[key] for s in mine])
        for key in ("p50_ms", "p99_ms"):
            row[f"added_{key}"] = _median([_added(s, segments, key) for s in mine])
        table.append(row)
    return table


def targets(table: list[dict[str, Any]], main_rate: float) -> dict[str, Any]:
    """The issue's targets, from the summary: named adds ≤ half of LiteLLM's at p50 and p99
    (every rate), auto adds ≤ 5 / 15 ms at `main_rate`, auto's saturation ≥ LiteLLM's."""
    by = {(r["rate"], r["path"]): r for r in table}
    found: dict[str, Any] = {}
    for rate in sorted({r["rate"] for r in table if r["rate"] is not None}):
        named, lite = by.get((rate, "spillway-named")), by.get((rate, "litellm"))
        if named and lite:
            found[f"named_half_of_litellm_at_{rate:g}"] = all(
                named[k] is not None and lite[k] is not None and named[k] <= lite[k] / 2
                for k in ("added_p50_ms", "added_p99_ms")
            )
    auto = by.get((main_rate, "spillway-auto"))
    if auto and auto["added_p50_ms"] is not None and auto["added_p99_ms"] is not None:
        found[f"auto_within_5_15_ms_at_{main_rate:g}"] = (
            auto["added_p50_ms"] <= 5 and auto["added_p99_ms"] <= 15
        )
    auto_sat, lite_sat = by.get((None, "spillway-auto")), by.get((None, "litellm"))
    if auto_sat and lite_sat:
        found["auto_saturation_at_least_litellm"] = (
            auto_sat["throughput_rps"] >= lite_sat["throughput_rps"]
        )
    return found


def markdown(table: list[dict[str, Any]]) -> str:
    lines = [
        "| load | path | client p50 / p90 / p99 ms | added over direct p50 / p99 ms | "
        "throughput | errors |",
        "|---|---|---|---|---|---|",
    ]
    for r in table:
        load = "saturation" if r["rate"] is None else f"{r['rate']:g} req/s"
        added = "—" if r["path"] == "direct" else f"{r['added_p50_ms']} / {r['added_p99_ms']}"
        lines.append(
            f"| {load} | {r['path']} | {r['p50_ms']} / {r['p90_ms']} / {r['p99_ms']} | {added} "
            f"| {r['throughput_rps']} req/s | {r['errors']} |"
        )
    return "\n".join(lines)


def _added(segment: dict[str, Any], segments: list[dict[str, Any]], key: str) -> float | None:
    """`segment`'s `key` minus direct's in the same round and load."""
    for other in segments:
        same = (other["round"], other["rate"]) == (segment["round"], segment["rate"])
        if same and other["path"] == "direct" and other[key] is not None:
            return None if segment[key] is None else _r(segment[key] - other[key])
    return None


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return _r(statistics.median(present)) if present else None


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _progress(segment: dict[str, Any]) -> None:
    load = "closed" if segment["rate"] is None else f"{segment['rate']:g}/s"
    print(
        f"peers: round {segment['round']} {load:>7} {segment['path']:<15} "
        f"p50 {segment['p50_ms']} p99 {segment['p99_ms']} ms, {segment['throughput_rps']} req/s, "
        f"{segment['errors']} errors, load {segment['load_average'][1]:.1f}",
        file=sys.stderr,
        flush=True,
    )


def _interrupted(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--paths",
        default=",".join(DEFAULT_PATHS),
        help=f"comma-separated, from {', '.join(PATHS)} (default: the first four)",
    )
    parser.add_argument("--rates", default="5,20,50", help="open-loop rates, requests/s")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per open segment")
    parser.add_argument("--in-flight", type=int, default=64, help="open loop: most in flight")
    parser.add_argument(
        "--saturation-duration",
        type=float,
        default=20.0,
        help="seconds per closed segment; 0: none",
    )
    parser.add_argument("--workers", type=int, default=16, help="closed-loop clients")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over every path")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds per path, unmeasured")
    parser.add_argument(
        "--main-rate", type=float, default=20.0, help="the rate auto's target is at"
    )
    parser.add_argument(
        "--venvs",
        default=str(REPO / ".spillway" / "bench-venvs"),
        help="where LiteLLM's venv is made (git-ignored state by default)",
    )
    parser.add_argument(
        "--spillway-overrides",
        help='JSON object merged into local.yaml\'s config, e.g. {"router": {"max_batch_size": 8}}',
    )
    parser.add_argument("--json-out", help="also write the report here")
    args = parser.parse_args(argv)
    args.paths = [p for p in args.paths.split(",") if p]
    unknown = set(args.paths) - set(PATHS)
    if unknown or "direct" not in args.paths:
        parser.error(f"--paths: choose from {', '.join(PATHS)}, direct included")
    args.rates = [float(r) for r in args.rates.split(",") if r]
    return args


def main() -> None:
    args = parse_args()
    # SIGTERM (and SIGINT, which a background job ignores) unwind like an exception, so the
    # backend, LiteLLM and Spillway's services started here are stopped on the way out.
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
    with started_peers(args) as peers:
        segments = rounds(peers, args)
        ledgers = ledger_check(peers, segments)
    table = summarize(segments)
    report = {
        "args": vars(args),
        "litellm_version": litellm_peer.LITELLM_VERSION,
        "summary": table,
        "targets": targets(table, args.main_rate),
        "ledger": ledgers,
        "segments": [{k: v for k, v in s.items() if k != "query_ids"} for s in segments],
    }
    print(markdown(table))
    print(json.dumps({"targets": report["targets"], "ledger": ledgers}, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
