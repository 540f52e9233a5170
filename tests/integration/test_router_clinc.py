"""Train small routers on a slice of CLINC150 through the CLI; evaluate with `eval --json`."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli.router import router
from router_training.artifact import load_router

EVAL_KEYS = {
    "accuracy",
    "macro_f1",
    "per_label",
    "latency_ms_p50",
    "latency_ms_p99",
    "throughput_qps",
    "in_scope_accuracy",
    "oos_recall",
    "ece",
    "abstain_rate",
    "confusion_matrix",
}


def clinc_slice(source: Path, out: Path, per_label: int, seed: int = 0) -> Path:
    rows = [json.loads(line) for line in source.read_text().splitlines()]
    random.Random(seed).shuffle(rows)
    taken: dict[str, int] = {}
    kept = []
    for row in rows:
        if taken.get(row["label"], 0) < per_label:
            taken[row["label"]] = taken.get(row["label"], 0) + 1
            kept.append(row)
    out.write_text("".join(json.dumps(row) + "\n" for row in kept))
    return out


@pytest.fixture(scope="module")
def clinc(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("clinc")
    return {
        "train": clinc_slice(shared_data / "clinc150" / "train.jsonl", base / "train.jsonl", 100),
        "val": clinc_slice(shared_data / "clinc150" / "val.jsonl", base / "val.jsonl", 40),
    }


def run_cli(*args: str) -> str:
    result = CliRunner().invoke(router, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("kind", ["bert", "tfidf"])
def test_train_then_eval_json(kind: str, clinc: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / kind
    args = ["train", "--data", str(clinc["train"]), "--out", str(out), "--no-progress"]
    bert = ["--kind", "bert", "--epochs", "10", "--max-length", "32"]  # not the default (auto)
    args += ["--baseline", "tfidf"] if kind == "tfidf" else bert
    report = json.loads(run_cli(*args, "--json"))
    assert report["kind"] == kind
    assert "holding out" in report["validation"]
    assert load_router(out).manifest.out_of_scope_label == "out_of_scope"

    metrics = json.loads(
        run_cli("eval", "--model", str(out), "--data", str(clinc["val"]), "--json")
    )
    assert set(metrics) >= EVAL_KEYS
    chance = 1 / 11
    assert metrics["argmax_accuracy"] > 5 * chance, metrics  # a wide margin over chance
    assert metrics["macro_f1"] > 0.3
    assert set(metrics["per_label"]) == set(load_router(out).labels)
    assert metrics["latency_ms_p50"] > 0 and metrics["throughput_qps"] > 0

    predicted = run_cli("predict", "--model", str(out), "--json", "what is my bank balance")
    row = json.loads(predicted.splitlines()[0])
    assert {"label", "probability", "runner_up", "abstained", "artifact_version"} <= set(row)


def test_eval_rejects_labels_the_model_never_saw(clinc: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "m"
    run_cli("train", "--data", str(clinc["train"]), "--out", str(out), "--baseline", "tfidf")
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"text": "hi", "label": "banking"}\n{"text": "x", "label": "sports"}\n')
    result = CliRunner().invoke(router, ["eval", "--model", str(out), "--data", str(odd)])
    assert result.exit_code != 0
    assert "line 2" in result.output and "'sports'" in result.output
