"""`spillway router train --from-ledger` on a real SQLite ledger: corrected routes are learnt,
the new router is written only when it beats the serving one, and rows without query text
stop the command with a message that says how to get text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bench.router_from_ledger import DRIFT_INTENTS, train_serving, write_ledger
from orchestrator.cli import main
from orchestrator.cli.router_ledger import ledger_training_rows
from orchestrator.ledger import Ledger, LedgerRow


def _records(path: Path, every: int) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().split("\n") if line.strip()]
    return [row for i, row in enumerate(rows) if i % every == 0]


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["router", "train", *args, "--no-progress"])
    return result.exit_code, result.output


def test_corrected_routes_are_learnt(tmp_path: Path, shared_data: Path) -> None:
    clinc = shared_data / "clinc150"
    serving = train_serving(_records(clinc / "train.jsonl", 3), tmp_path, "tfidf")
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    counts = write_ledger(url, _records(clinc / "val.jsonl", 1), serving)
    assert counts["drift_rows"] == 20 * len(DRIFT_INTENTS) and counts["corrected"] >= 40
    code, output = _run(
        "--from-ledger", "--ledger-url", url, "--serving", str(serving), "--kind", "tfidf",
        "--data", str(tmp_path / "serving-train.jsonl"), "--out", str(tmp_path / "new"), "--json",
    )  # fmt: skip
    assert code == 0, output
    report = json.loads(output[output.index("{") :])
    assert report["replaced"] is True and (tmp_path / "new" / "manifest.json").is_file()
    assert report["serving"]["corrected_accuracy"] == 0.0
    assert report["candidate"]["corrected_accuracy"] >= 0.5
    assert (
        report["candidate"]["confident_accuracy"] >= report["serving"]["confident_accuracy"] - 0.02
    )


def _plain_row(index: int, route: str, probability: float, text: str | None) -> LedgerRow:
    return LedgerRow(
        query_id=f"q{index}",
        created_at=datetime.now(UTC),
        tenant="t",
        status="ok",
        http_status=200,
        model_requested="auto",
        route=route,
        route_probability=probability,
        query_text=text,
    )


def test_rows_without_text_stop_the_command_and_say_why(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger(url) as ledger:
        for i in range(5):
            ledger.record(_plain_row(i, "legal", 0.95, None))
        assert ledger.flush()
        ledger.add_feedback("q0", 0.0, route="medical")
    serving = tmp_path / "serving"
    serving.mkdir()
    out = f"{tmp_path}/o"
    code, output = _run(
        "--from-ledger", "--ledger-url", url, "--serving", f"{serving}", "--out", out
    )
    assert code == 1
    assert "no query text" in output and "keep_query_text" in output


def test_ledger_rows_are_labelled_by_feedback_then_confidence() -> None:
    def row(route: str, probability: float, text: str | None, corrected: str | None) -> Any:
        return {
            "route": route,
            "route_probability": probability,
            "query_text": text,
            "corrected_route": corrected,
        }

    built = ledger_training_rows(
        [
            row("legal", 0.99, "a", None),
            row("legal", 0.5, "b", "medical"),
            row("legal", 0.5, "c", None),
            row("code", 0.95, None, None),
            row("code", 0.2, None, "general"),
        ],
        confident_at=0.9,
    )
    assert (built.texts, built.labels) == (["a", "b"], ["legal", "medical"])
    assert built.groups == ["confident", "corrected"]
    assert dict(built.without_text) == {"confident": 1, "corrected": 1}
    assert built.unconfident == 1


def test_serving_router_cannot_be_the_output(tmp_path: Path) -> None:
    from router_training.data import LabelledData
    from router_training.retrain import retrain_if_better

    rows = LabelledData(["a", "b"], ["x", "y"], "test", "0")
    with pytest.raises(ValueError, match="is the serving router"):
        retrain_if_better(rows, ["confident"] * 2, tmp_path, tmp_path)
