"""Step 2 of the live benchmark: thresholds and the difficulty scorer from the calibration part
only, through the project's own CLI (`spillway cascade calibrate`, `spillway router train`);
and the check that the ledger agrees with the responses."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from bench.live_ask import Reply
from bench.live_questions import Question
from bench.live_report import Prices
from cascade.confidence import FEATURE_NAMES, Signal
from cascade.live import auroc
from cascade.policy import CascadePolicy, RoutePolicy

# The skip takes the fifth of queries the scorer finds hardest straight to the large model; the
# cascade's thresholds then decide the rest. (A quality target in route mode would skip far
# more: skipping raises quality, so quality=0.98 sends whole routes to the large model.)
SKIP_TARGET = "escalation=0.2"
MIN_ROUTE_RECORDS = 40


def spillway(*args: str) -> None:
    command = [str(Path(sys.executable).parent / "spillway"), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _outcome_rows(
    calibration: Sequence[Question], small: dict[str, Reply], large: dict[str, Reply], usd: Prices
) -> list[dict[str, Any]]:
    return [
        {
            "text": q.text,
            "small_correct": small[q.qid].correct,
            "large_correct": large[q.qid].correct,
            "small_cost": usd.small_cost(small[q.qid]),
            "large_cost": usd.large_cost(large[q.qid]),
            "route": small[q.qid].route_key,
            "signals": small[q.qid].signals,
        }
        for q in calibration
    ]


def _calibrate(
    rows: list[dict[str, Any]],
    scores: list[float],
    target: str,
    out: Path,
    extra: Sequence[str] = (),
) -> CascadePolicy:
    data = out.with_suffix(".jsonl")
    _write_jsonl(data, [r | {"score": s} for r, s in zip(rows, scores, strict=True)])
    source = ["--outcomes", str(data), "--score-field", "score"]
    return calibrate_with_cli(source, target, out, *extra)


def calibrate_with_cli(source: list[str], target: str, out: Path, *extra: str) -> CascadePolicy:
    """`spillway cascade calibrate` on `source` (its data options), written to `out`; the
    policy it wrote."""
    spillway(
        "cascade",
        "calibrate",
        *source,
        "--target",
        target,
        "--min-route-records",
        str(MIN_ROUTE_RECORDS),
        "--out",
        str(out),
        *extra,
    )
    return CascadePolicy.model_validate(yaml.safe_load(out.read_text())["policy"])


def _with_signal(policy: CascadePolicy, signal: str) -> CascadePolicy:
    """The calibrated thresholds were fitted on `signal`'s values (given as the score field)."""

    def fix(p: RoutePolicy) -> RoutePolicy:
        return p.model_copy(update={"signal": Signal(signal)})

    return CascadePolicy(
        default=fix(policy.default), routes={k: fix(v) for k, v in policy.routes.items()}
    )


def _train_scorer(rows: list[dict[str, Any]], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    data = out.with_suffix(".jsonl")
    _write_jsonl(data, [{"text": r["text"], "small_correct": r["small_correct"]} for r in rows])
    spillway(
        "router",
        "train",
        "--data",
        str(data),
        "--label-field",
        "small_correct",
        "--kind",
        "tfidf",
        "--out",
        str(out),
    )
    return out


def _scores(scorer: Path, texts: list[str]) -> list[float]:
    from orchestrator.backends.router import load_difficulty

    return load_difficulty(str(scorer)).small_enough(texts)


def _cross_fitted(rows: list[dict[str, Any]], out: Path) -> list[float]:
    """Each half scored by a scorer trained on the other half (in-sample scores flatter it)."""
    halves = [list(range(0, len(rows), 2)), list(range(1, len(rows), 2))]
    scores = [0.0] * len(rows)
    for k, (train, held) in enumerate((halves, halves[::-1])):
        scorer = _train_scorer([rows[i] for i in train], out / f"fold{k}")
        for i, s in zip(held, _scores(scorer, [rows[i]["text"] for i in held]), strict=True):
            scores[i] = s
    return scores


def _combined(cascade: CascadePolicy, skip: CascadePolicy) -> CascadePolicy:
    """Route before, cascade after: each route's thresholds with the skip's skip_below."""

    def merge(route: str | None) -> RoutePolicy:
        own = cascade.default if route is None else cascade.for_route(route)
        skip_below = (skip.default if route is None else skip.for_route(route)).skip_below
        return own.model_copy(update={"skip_below": skip_below})

    routes = sorted(set(cascade.routes) | set(skip.routes))
    return CascadePolicy(default=merge(None), routes={r: merge(r) for r in routes})


def calibrate_all(
    calibration: Sequence[Question],
    test: Sequence[Question],
    replies: dict[str, dict[str, Reply]],
    usd: Prices,
    target: str,
    out: Path,
    log: Callable[[str], None],
) -> dict[str, Any]:
    small, large = replies["small"], replies["large"]
    rows = _outcome_rows(calibration, small, large, usd)
    labels = [r["small_correct"] for r in rows]
    aurocs = {n: auroc([r["signals"].get(n, 0.0) for r in rows], labels) for n in FEATURE_NAMES}
    signal = max(aurocs, key=lambda n: aurocs[n] or 0.0)
    log(f"calibration AUROC {json.dumps(aurocs)}; thresholds on {signal}")
    scores = [r["signals"].get(signal, 0.0) for r in rows]
    cascade = _with_signal(_calibrate(rows, scores, target, out / "cascade.yaml"), signal)
    scorer = _train_scorer(rows, out / "difficulty_scorer")
    crossfit = _cross_fitted(rows, out / "difficulty_folds")
    skip = _calibrate(rows, crossfit, SKIP_TARGET, out / "skip.yaml", ("--mode", "route"))
    both = _combined(cascade, skip)
    (out / "both.yaml").write_text(yaml.safe_dump({"policy": both.model_dump(mode="json")}))
    return {
        "signal": signal,
        "calibration_auroc": aurocs,
        "thresholds": cascade.model_dump(mode="json"),
        "skip_below": skip.model_dump(mode="json"),
        "policies": {"cascade alone": cascade, "skip alone": skip, "both": both},
        "scorer": str(scorer),
        "small_enough": scorer_probabilities(str(scorer), test),
    }


def scorer_probabilities(scorer: str, questions: Sequence[Question]) -> dict[str, float]:
    scores = _scores(Path(scorer), [q.text for q in questions])
    return {q.qid: s for q, s in zip(questions, scores, strict=True)}


def ledger_agreement(ledger: Path, replies: dict[str, Reply], wait_s: float = 60) -> dict[str, Any]:
    """Compare every response with its ledger row: escalated, reason, cost, skipped small."""
    ids = {r.query_id: r for r in replies.values()}
    deadline = time.monotonic() + wait_s
    rows: dict[str, tuple[Any, ...]] = {}
    while time.monotonic() < deadline:
        with sqlite3.connect(ledger) as db:
            found = db.execute(
                "SELECT query_id, escalated, escalation_reason, cost_usd, small_prompt_tokens, "
                "answered_by FROM ledger"
            ).fetchall()
        rows = {row[0]: row for row in found if row[0] in ids}
        if len(rows) == len(ids):
            break
        time.sleep(2)
    mismatches = []
    for qid, reply in ids.items():
        row = rows.get(qid)
        reason = reply.reason if reply.escalated else None
        skipped_ok = reply.reason != "predicted_hard" or (row is not None and row[4] == 0)
        if (
            row is None
            or bool(row[1]) != reply.escalated
            or row[2] != reason
            or abs(float(row[3]) - reply.cost_usd) > 1e-9
            or row[5] != reply.answered_by
            or not skipped_ok
        ):
            mismatches.append(qid)
    return {"responses": len(ids), "rows": len(rows), "mismatches": len(mismatches)}


def post_feedback(base_url: str, key: str, replies: Sequence[Reply]) -> int:
    """`POST /v1/feedback` (correct or not) for each reply; retried while its row is in flight."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    sent = 0
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        for reply in replies:
            body = {"query_id": reply.query_id, "correct": reply.correct}
            for _ in range(30):
                response = client.post("/v1/feedback", json=body)
                if response.status_code != 404:  # 404: the ledger row is not written yet
                    break
                time.sleep(1)
            response.raise_for_status()
            sent += 1
    return sent
