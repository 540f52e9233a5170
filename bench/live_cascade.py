"""The cascade measured live: the running service, real models, checkable questions.

    .venv/bin/python bench/live_cascade.py [--url URL --key KEY] [--limit N] [--json]

Without --url it starts the embedded default (serve_config/local.yaml, real models) itself, once
(hold `flock` on a shared machine: the service takes about 13 GiB), and never restarts it:

1. **Baselines**, the cascade switched off (every threshold 0): each calibration and test
   question with `model: auto` (routed, the adapter's answer: always-small, with every
   confidence signal of the answer) and with the large model named (always-large); and each
   engine's CPU-seconds per token, measured.
2. **The loop from the ledger**: the calibration part's answers judged through
   `POST /v1/feedback`, `spillway cascade calibrate --from-ledger ... --apply URL` (thresholds
   fitted on those ledger rows and put in force by `PUT /v1/admin/cascade`), then the test part
   with `model: auto` under that policy.
3. **Calibration** on the calibration part's recorded answers only: the signal with the best
   AUROC there, its thresholds from `spillway cascade calibrate --target quality=0.95`; the
   difficulty scorer from `spillway router train --label-field small_correct --kind tfidf`, its
   `skip_below` from `spillway cascade calibrate --mode route` on cross-fitted scores.
4. **Spillway**: the calibrated thresholds put in force by `PUT /v1/admin/cascade`, the test
   part with `model: auto`; every response's escalation, reason and cost checked against its
   ledger row. The policy in force (`GET /v1/admin/cascade`) is recorded for each test pass, and
   the model replicas' and engines' pids before and after (unchanged: nothing restarted).

The difficulty scorer is trained in step 3, after the service started, and a scorer is loaded
only at start, so the skip (alone and with the cascade) is replayed on the baselines' recorded
answers (greedy decoding, so the service would give the same answers).
With --url the service given is used for steps 1 and 4 (the cascade off at first; the key must
be an admin key); the ledger steps need the service's own ledger, so they run only without it.
Prices: the small and large models priced as the 8B and 70B of serve_config/production.yaml,
and again at each engine's measured CPU-seconds per token. Method and numbers: BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: `python bench/live_cascade.py`
    sys.path.insert(0, str(REPO))

from bench.live_ask import ask_all, cpu_seconds_per_token, make_client  # noqa: E402
from bench.live_calibrate import calibrate_all, ledger_agreement, post_feedback  # noqa: E402
from bench.live_questions import build_questions, split  # noqa: E402
from bench.live_reload import (  # noqa: E402
    calibrate_from_ledger,
    model_processes,
    policy_in_force,
    policy_summary,
    processes_unchanged,
    put_policy,
)
from bench.live_report import (  # noqa: E402
    Prices,
    fit_learned,
    learned_vs_best,
    outcomes,
    price_report,
)
from cascade.policy import CascadePolicy  # noqa: E402

API_KEY = "sk-spillway-local"
OUT = REPO / "bench" / "results" / "live_cascade"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", help="A running Spillway, cascade off at first; --key must be an admin key."
    )
    parser.add_argument("--key", default=API_KEY, help="API key (default: local.yaml's).")
    parser.add_argument("--limit", type=int, help="Only the first N test questions (quick).")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    parser.add_argument("--per-domain", type=int, default=120, help="Questions per domain.")
    parser.add_argument("--concurrency", type=int, default=8, help="Requests in flight.")
    parser.add_argument("--target", default="quality=0.95", help="Calibration target.")
    parser.add_argument(
        "--stream-questions",
        type=int,
        default=48,
        help="Test questions for the streaming step (first_k vs whole answer; 0 skips it).",
    )
    parser.add_argument("--out", type=Path, default=OUT, help="Directory for files and plot.")
    parser.add_argument(
        "--replies",
        type=Path,
        help="Re-analyse a recorded run (its replies.jsonl) without a service: calibration and "
        "replays only (its live answers belong to the policy it ran with, so they are dropped).",
    )
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def production_prices() -> tuple[tuple[float, float], tuple[float, float]]:
    """USD per token (input, output) of the 8B and the 70B in serve_config/production.yaml."""
    import yaml

    data = yaml.safe_load((REPO / "serve_config" / "production.yaml").read_text())
    return tuple(  # type: ignore[return-value]
        (
            float(data[m]["price"]["input_per_million"]) / 1e6,
            float(data[m]["price"]["output_per_million"]) / 1e6,
        )
        for m in ("small", "large")
    )


@contextmanager
def own_service(overrides: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """local.yaml with real models, the overrides, its own ledger, on a free port."""
    import tempfile

    from tests.e2e.conftest import LOCAL_CONFIG, start_service, stop_service

    with tempfile.TemporaryDirectory(prefix="spillway-live-") as tmp:
        started = time.perf_counter()
        service, proc = start_service(Path(tmp), overrides, LOCAL_CONFIG)
        log(f"service ready at {service.base_url} in {time.perf_counter() - started:.0f} s")
        try:
            yield service, proc
        finally:
            log(f"service stopped (exit {stop_service(proc)})")


def base_overrides(policy: dict[str, Any], difficulty: str | None = None) -> dict[str, Any]:
    from tests.e2e.conftest import LOCAL_CONFIG, local_config_data

    data = local_config_data(LOCAL_CONFIG)
    small, large = production_prices()
    for name, (inp, out) in (("small", small), ("large", large)):
        data[name]["price"] = {
            "input_per_million": f"{inp * 1e6:g}",
            "output_per_million": f"{out * 1e6:g}",
        }
    router = data["router"] | ({"difficulty_artifact": difficulty} if difficulty else {})
    return {"small": data["small"], "large": data["large"], "cascade": policy, "router": router}


LEARNED = ("--signal", "learned")
CASCADE_OFF = {"default": {"signal": "mean_prob", "threshold": 0.0}}


def baselines(base_url: str, key: str, questions: list[Any], concurrency: int) -> dict[str, Any]:
    client = make_client(base_url, key)
    started = time.perf_counter()
    rates = {
        "small": cpu_seconds_per_token(client, "spillway-small"),
        "small_adapter": cpu_seconds_per_token(client, "legal"),
        "large": cpu_seconds_per_token(client, "spillway-large"),
    }
    log(f"CPU-seconds per token: {json.dumps(rates)}")
    with ThreadPoolExecutor(max_workers=2) as pool:  # two engines, two cores: run both at once
        small_job = pool.submit(
            ask_all, client, questions, "auto", concurrency=concurrency, progress=log
        )
        large_job = pool.submit(
            ask_all, client, questions, "spillway-large", concurrency=concurrency, progress=log
        )
        small, large = small_job.result(), large_job.result()
    escalated = sum(r.escalated for r in small.values())
    if escalated:
        log(f"WARNING: {escalated} 'auto' baseline answers were escalated: is the cascade off?")
    return {"small": small, "large": large, "cpu": rates, "seconds": time.perf_counter() - started}


def ledger_loop(
    service: Any, args: argparse.Namespace, calibration: list[Any], test: list[Any], base: Any
) -> tuple[dict[str, CascadePolicy], dict[str, Any]] | None:
    """Step 2: the calibration part's answers judged through `POST /v1/feedback`, thresholds
    from those ledger rows (`--from-ledger`, the baseline's signal mean_prob) put in force with
    `--apply`, then the test part under them; also the learned signal fitted on the rows'
    recorded signals (`--signal learned`, replayed). A failure is reported, the run goes on."""
    try:
        sent = post_feedback(
            service.base_url, args.key, [base["small"][q.qid] for q in calibration]
        )
        large_quality = sum(base["large"][q.qid].correct for q in calibration) / len(calibration)
        fit = (service.ledger_path, large_quality, args.target)
        learned = calibrate_from_ledger(*fit, args.out / "from_ledger_learned.yaml", *LEARNED)
        log(f"learned signal from the ledger: {learned.default.model_dump(mode='json')}")
        apply = ("--apply", service.base_url, "--api-key", args.key)
        policy = calibrate_from_ledger(*fit, args.out / "from_ledger.yaml", *apply)
        log(f"{sent} feedback posts; thresholds from the ledger applied: {policy.model_dump()}")
        live = test_pass(service.base_url, args.key, test, args.concurrency)
        live["ledger_agreement"] = ledger_agreement(service.ledger_path, live["replies"])
        return {"mean_prob": policy, "learned": learned}, live
    except Exception as error:  # the loop is an extra: report it, keep the main results
        log(f"ledger loop failed: {error}")
        return None


def test_pass(base_url: str, key: str, test: list[Any], concurrency: int) -> dict[str, Any]:
    """The test part with `model: auto` under the policy in force, which is recorded."""
    state = policy_summary(policy_in_force(base_url, key))
    log(f"policy in force: source {state['source']}, version {state['version']}")
    started = time.perf_counter()
    client = make_client(base_url, key)
    replies = ask_all(client, test, "auto", concurrency=concurrency, progress=log)
    return {"replies": replies, "policy": state, "seconds": time.perf_counter() - started}


def run(args: argparse.Namespace) -> dict[str, Any]:
    calibration, test = split(build_questions(args.per_domain))
    if args.limit:
        test = test[: args.limit]
        calibration = calibration[: max(2 * args.limit, 40)]
    args.out.mkdir(parents=True, exist_ok=True)
    log(f"{len(calibration)} calibration and {len(test)} test questions")
    meta: dict[str, Any] = {"calibration_questions": len(calibration), "test_questions": len(test)}
    small_usd, large_usd = production_prices()
    usd = Prices("production.yaml (8B/70B)", "USD", small_usd, large_usd)
    if args.replies:
        base = recorded(args.replies)
        replies: dict[str, dict[str, Any]] = {"small": base["small"], "large": base["large"]}
        cal = calibrate_all(calibration, test, replies, usd, args.target, args.out, log)
    elif args.url:
        base = baselines(args.url, args.key, calibration + test, args.concurrency)
        replies = {"small": base["small"], "large": base["large"]}
        cal = calibrate_all(calibration, test, replies, usd, args.target, args.out, log)
        replies["spillway"] = applied_pass(args.url, args, test, cal, meta, None)
        streaming_step(args.url, args, test, meta)
    else:
        with own_service(base_overrides(CASCADE_OFF)) as (service, proc):
            before = model_processes(proc.pid)
            base = baselines(service.base_url, args.key, calibration + test, args.concurrency)
            replies = {"small": base["small"], "large": base["large"]}
            loop = ledger_loop(service, args, calibration, test, base)
            cal = calibrate_all(calibration, test, replies, usd, args.target, args.out, log)
            if loop is not None:
                for signal, policy in loop[0].items():
                    cal["policies"][f"cascade from ledger feedback ({signal})"] = policy
                replies["spillway_from_ledger"] = loop[1].pop("replies")
                meta["from_ledger"] = loop[1]
            replies["spillway"] = applied_pass(service.base_url, args, test, cal, meta, service)
            streaming_step(service.base_url, args, test, meta)
            after = model_processes(proc.pid)
            meta["model_processes"] = {
                "before": before,
                "after": after,
                "unchanged": processes_unchanged(before, after),
            }
            log(f"model processes unchanged: {meta['model_processes']['unchanged']}")
    meta |= {"baseline_seconds": base["seconds"], "cpu_seconds_per_token": base["cpu"]}
    meta |= {k: cal[k] for k in ("signal", "calibration_auroc", "thresholds", "skip_below")}
    result = report(args, calibration, test, replies, cal, usd, base["cpu"], meta)
    _save(args.out, replies, result)
    return result


def applied_pass(
    base_url: str,
    args: argparse.Namespace,
    test: list[Any],
    cal: dict[str, Any],
    meta: dict[str, Any],
    service: Any,
) -> dict[str, Any]:
    """Step 4: the calibrated thresholds (no skip: the scorer is loaded only at start) put in
    force with `PUT /v1/admin/cascade`, then the test part; the ledger checked when it is ours."""
    put_policy(base_url, args.key, cal["policies"]["cascade alone"])
    live = test_pass(base_url, args.key, test, args.concurrency)
    if service is not None:
        live["ledger_agreement"] = ledger_agreement(service.ledger_path, live["replies"])
    replies: dict[str, Any] = live.pop("replies")
    meta["spillway"] = live
    return replies


def streaming_step(base_url: str, args: argparse.Namespace, test: list[Any], meta: Any) -> None:
    """Step 5 (bench/live_stream.py): a stream decided after k tokens vs on the whole answer."""
    from bench.live_stream import stream_tradeoff

    if args.stream_questions > 0:
        meta["streaming"] = stream_tradeoff(
            lambda: make_client(base_url, args.key), base_url, args.key,
            test[: args.stream_questions], cascade_off=CascadePolicy.model_validate(CASCADE_OFF),
            log=log,
        )  # fmt: skip


def recorded(path: Path) -> dict[str, Any]:
    """The baselines of a recorded run (`replies.jsonl` and `result.json` beside it)."""
    from bench.live_ask import Reply

    replies: dict[str, dict[str, Any]] = {"small": {}, "large": {}}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row.pop("kind") in replies:
            kind = "small" if row["model"] == "auto" else "large"
            replies[kind][row["qid"]] = Reply(**row)
    meta = json.loads((path.parent / "result.json").read_text())["meta"]
    return replies | {"cpu": meta["cpu_seconds_per_token"], "seconds": meta["baseline_seconds"]}


HEADLINE = (
    "always_small",
    "always_large",
    "spillway",
    "spillway_from_ledger",
    "apgr",
    "random_apgr",
    "apgr_ci",
    "savings_at_95pct_quality",
    "savings_at_95pct_quality_ci",
    "auroc",
)


def report(
    args: argparse.Namespace,
    calibration: list[Any],
    test: list[Any],
    replies: dict[str, dict[str, Any]],
    cal: dict[str, Any],
    usd: Prices,
    cpu: dict[str, dict[str, float]],
    meta: dict[str, Any],
) -> dict[str, Any]:
    """Both price tables' reports, the plot, and the headline keys of `--json`."""
    cpu_prices = Prices(
        "measured CPU-seconds per token",
        "CPU-s",
        (cpu["small"]["prompt"], cpu["small"]["completion"]),
        (cpu["large"]["prompt"], cpu["large"]["completion"]),
        (cpu["small_adapter"]["prompt"], cpu["small_adapter"]["completion"]),
    )
    learned = fit_learned(calibration, replies["small"])
    reports = {
        p.unit: price_report(
            test, replies, p, cal["policies"], cal["small_enough"], cal["signal"], learned
        )
        for p in (usd, cpu_prices)
    }
    _plot(test, replies, usd, learned, reports["USD"], cal["signal"], args.out)
    headline = reports["USD"]
    ledger_learned = cal["policies"].get("cascade from ledger feedback (learned)")
    if ledger_learned is not None:
        meta["learned_from_ledger"] = learned_vs_best(test, replies["small"], ledger_learned)
    result: dict[str, Any] = {key: headline[key] for key in HEADLINE if key in headline}
    return result | {"usd": headline, "cpu_seconds": reports["CPU-s"], "meta": meta}


def _plot(
    test: Any, replies: Any, usd: Prices, learned: Any, report: Any, signal: str, out: Path
) -> None:
    from bench.live_plot import plot_deferral

    rows = outcomes(test, replies["small"], replies["large"], usd, learned)
    points = {f"replay {k}": (v["share_large"], v["accuracy"]) for k, v in report["replay"].items()}
    for key, label in (("spillway", "Spillway live"), ("spillway_from_ledger", "live, ledger")):
        if key in report:
            points[label] = (report[key]["share_escalated"], report[key]["accuracy"])
    signals = [s for s in ("mean_prob", "geometric_mean", "min_prob", "first_k", "learned")]
    title = f"Deferral curves, {len(rows)} test questions (main signal: {signal})"
    plot_deferral(rows, signals, points, out / "deferral.png", title)


def _save(out: Path, replies: dict[str, dict[str, Any]], result: dict[str, Any]) -> None:
    from dataclasses import asdict

    with (out / "replies.jsonl").open("w") as f:
        for kind, by_id in replies.items():
            for reply in by_id.values():
                f.write(json.dumps({"kind": kind, **asdict(reply)}) + "\n")
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result, default=str))
    else:
        from bench.live_summary import summary

        print(summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
