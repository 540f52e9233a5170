"""A slice of the live cascade benchmark through the real default (local.yaml's real models),
with a difficulty scorer wired in: escalations, costs and ledger rows agree with the
responses (every signal of the small answer included), and a query predicted too hard goes to
the large model with no small attempt."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from bench.live_ask import ask_all
from bench.live_calibrate import ledger_agreement
from bench.live_questions import build_questions, split
from router_training.train import train_router
from tests.e2e.conftest import (
    LOCAL_CONFIG,
    RunningService,
    local_config_data,
    start_service,
    stop_service,
)

pytestmark = pytest.mark.slow

# `general` (the arithmetic) is always predicted hard (every probability is below 1.0); the
# adapters' routes never skip; code escalates every answer, legal and medical keep every one.
POLICY = {
    "default": {"signal": "mean_prob", "threshold": 0.0},
    "routes": {
        "general": {"signal": "mean_prob", "threshold": 0.0, "skip_below": 1.0},
        "code": {"signal": "mean_prob", "threshold": 1.0},
        "legal": {"signal": "mean_prob", "threshold": 0.0},
        "medical": {"signal": "mean_prob", "threshold": 0.0},
    },
}


def _scorer(base: Path) -> Path:
    """A difficulty scorer trained on made-up labels (its probability does not matter here)."""
    calibration, _ = split(build_questions(40))
    data = base / "difficulty.jsonl"
    data.write_text(
        "".join(
            json.dumps({"text": q.text, "small_correct": q.domain != "general"}) + "\n"
            for q in calibration
        )
    )
    report = train_router(
        data, base / "scorer", kind="tfidf", label_field="small_correct", progress=False
    )
    return Path(report.artifact)


@pytest.fixture(scope="module")
def live_service(
    real_models_built: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    tmp = tmp_path_factory.mktemp("live")
    router = local_config_data(LOCAL_CONFIG)["router"] | {"difficulty_artifact": str(_scorer(tmp))}
    running, proc = start_service(tmp, {"cascade": POLICY, "router": router}, LOCAL_CONFIG)
    yield running
    code = stop_service(proc)
    assert code == 0, f"exit {code} on SIGTERM:\n{running.log_path.read_text()[-3000:]}"


def test_slice_agrees_with_ledger_and_skips_predicted_hard(live_service: RunningService) -> None:
    _, test = split(build_questions(40))
    questions = test[:12]  # three per domain (the test part is interleaved by domain)
    replies = ask_all(live_service.client(), questions, "auto", concurrency=4)
    by_route = {r.route_key: r for r in replies.values()}
    skipped = [r for r in replies.values() if r.reason == "predicted_hard"]
    assert skipped, f"no query was routed to general: {[r.route_key for r in replies.values()]}"
    for reply in skipped:
        assert reply.route_key == "general"
        assert reply.escalated and reply.answered_by == "spillway-large"
        assert reply.signals == {}  # no small answer was scored
    assert all(r.reason == "low_confidence" for r in replies.values() if r.route_key == "code")
    assert by_route.keys() - {"general", "code"}, "no query stayed on the small model"

    agreement = ledger_agreement(live_service.ledger_path, replies)
    assert agreement == {"responses": 12, "rows": 12, "mismatches": 0}
    with sqlite3.connect(live_service.ledger_path) as db:
        rows = {
            row[0]: row[1:]
            for row in db.execute(
                "SELECT query_id, small_prompt_tokens, small_completion_tokens, cost_small_usd, "
                "cost_large_usd, large_completion_tokens, confidence_signal, signals FROM ledger"
            )
        }
    for reply in replies.values():  # every signal of a scored small answer is kept (0006)
        stored = rows[reply.query_id][-1]
        assert (json.loads(stored) if stored else {}) == reply.signals
    for reply in skipped:
        small_prompt, small_completion, cost_small, cost_large, large_completion, signal, _ = rows[
            reply.query_id
        ]
        assert (small_prompt, small_completion, Decimal(str(cost_small))) == (0, 0, Decimal(0))
        # SQLite hands the money columns back as floats: compare their decimal spelling
        assert Decimal(str(cost_large)) == Decimal(str(reply.cost_usd)) > 0
        assert large_completion == reply.completion_tokens and signal == "difficulty"
