"""`spillway cascade calibrate --from-ledger` on a real SQLite ledger, and the thresholds file
it writes loaded by a serve config (`cascade_file`) and `spillway config check`."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from cascade.calibrate import policy_from_file_data
from cascade.policy import RoutePolicy
from orchestrator.cli import main
from orchestrator.config import load_config
from orchestrator.ledger import Ledger
from tests.fakes import CONFIG
from tests.postgres import free_port
from tests.unit.test_ledger_row import T0, make_row


def _row(index: int, route: str, confidence: float, escalated: bool) -> Any:
    return make_row(
        query_id=f"q{index}",
        created_at=T0 + timedelta(seconds=index),
        route=route,
        adapter=route,
        confidence=confidence,
        escalated=escalated,
        escalation_reason="low_confidence" if escalated else None,  # as the service writes
        answered_by="large" if escalated else route,
        cost_small_usd=Decimal("0.001"),
        cost_large_usd=Decimal("0.01") if escalated else Decimal(0),
        baseline_cost_usd=Decimal("0.01"),
    )


def seed_feedback(url: str) -> None:
    """legal: 40 accepted answers at confidence 0.51..0.90, right from 0.71 up; 20 escalated
    ones at 0.05..0.43, all right (so the large model's assumed quality is 1.0). code: 10
    accepted right answers (too few for a threshold of its own). One row without feedback and
    one sent straight to the large model must be ignored."""
    rows, judged = [], []
    for i in range(40):
        confidence = round(0.51 + 0.01 * i, 2)
        rows.append(_row(i, "legal", confidence, False))
        judged.append((f"q{i}", 1.0 if confidence >= 0.71 else 0.0))
    for i in range(20):
        rows.append(_row(100 + i, "legal", round(0.05 + 0.02 * i, 2), True))
        judged.append((f"q{100 + i}", 1.0))
    for i in range(10):
        rows.append(_row(200 + i, "code", 0.8, False))
        judged.append((f"q{200 + i}", 1.0))
    rows.append(_row(300, "legal", 0.99, False))  # no feedback
    direct = make_row(query_id="q301", confidence=None, escalation_reason="requested_large")
    skipped = make_row(  # predicted hard: the difficulty score is no answer's confidence
        query_id="q302",
        confidence=0.1,
        confidence_signal="difficulty",
        escalated=True,
        escalation_reason="predicted_hard",
    )
    rows += [direct, skipped]
    judged += [("q301", 0.0), ("q302", 1.0)]
    with Ledger(url) as ledger:
        for row in rows:
            ledger.record(row)
        assert ledger.flush()
        ledger.add_feedback("q0", 1.0)  # superseded by the later judgement below
        for query_id, score in judged:
            ledger.add_feedback(query_id, score, correct=score == 1.0)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def ledger_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    seed_feedback(url)
    return url


def test_calibrate_from_ledger_per_route(ledger_url: str, tmp_path: Path) -> None:
    out = tmp_path / "thresholds.yaml"
    code, stdout, stderr = run(
        "cascade", "calibrate", "--from-ledger", "--ledger-url", ledger_url,
        "--target", "quality=0.92", "--out", str(out), "--json",
    )  # fmt: skip
    assert code == 0, stderr
    assert "route(s) code have fewer than 50 feedback rows" in stderr
    data = json.loads(stdout)
    assert data == yaml.safe_load(out.read_text())
    # legal: 0.92 of 60 needs at most 4 wrong accepted answers: keep 0.67..0.70 and above
    legal = data["calibration"]["routes"]["legal"]
    assert (legal["threshold"], legal["records"]) == (0.67, 60)
    assert legal["escalation_rate"] == pytest.approx(36 / 60)
    assert legal["quality"] == pytest.approx(56 / 60)
    # default, all 70 rows: at most 5 wrong accepted answers
    assert data["calibration"]["default"]["threshold"] == 0.66
    assert set(data["policy"]["routes"]) == {"legal"}
    source = data["calibration"]["source"]
    assert (source["records"], source["escalated_records"]) == (70, 20)
    assert source["large_quality_assumed"] == {"code": 1.0, "legal": 1.0}


def test_thresholds_round_trip_into_a_serve_config(ledger_url: str, tmp_path: Path) -> None:
    out = tmp_path / "calibrated" / "thresholds.yaml"
    out.parent.mkdir()
    code, _, stderr = run(
        "cascade", "calibrate", "--from-ledger", "--ledger-url", ledger_url,
        "--target", "quality=0.92", "--out", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    config_data = copy.deepcopy(CONFIG)
    del config_data["cascade"]
    config_data["cascade_file"] = "calibrated/thresholds.yaml"  # relative to the config
    config_path = tmp_path / "serve.yaml"
    config_path.write_text(yaml.safe_dump(config_data))
    config = load_config(config_path)
    assert config.cascade == policy_from_file_data(yaml.safe_load(out.read_text()))
    assert config.cascade.for_route("legal") == RoutePolicy(threshold=0.67)
    assert config.cascade.for_route("code") == RoutePolicy(threshold=0.66)
    assert config.cascade_file == str(out)
    code, stdout, _ = run("config", "check", str(config_path))
    assert (code, stdout.strip()) == (0, f"{config_path}: ok")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cascade_file: {file}: cannot read the file"),
        ("policy: [", "cascade_file: {file}: not valid YAML or JSON"),
        ("routes: {}", "cascade_file: {file}: a thresholds file is a mapping with a `policy` key"),
        (
            "policy: {default: {threshold: 1.5}}",
            "cascade_file: {file}: policy.default.threshold: Input should be less than or equal",
        ),
    ],
)
def test_bad_cascade_files_are_named(tmp_path: Path, content: str | None, message: str) -> None:
    thresholds = tmp_path / "t.yaml"
    if content is not None:
        thresholds.write_text(content)
    config_data = {k: v for k, v in CONFIG.items() if k != "cascade"}
    config_path = tmp_path / "serve.yaml"
    config_path.write_text(yaml.safe_dump({**config_data, "cascade_file": "t.yaml"}))
    code, stdout, _ = run("config", "check", str(config_path))
    assert code == 2
    assert message.format(file=thresholds) in stdout


def test_inline_cascade_and_file_are_exclusive(tmp_path: Path) -> None:
    config_path = tmp_path / "serve.yaml"
    config_path.write_text(yaml.safe_dump({**CONFIG, "cascade_file": "t.yaml"}))
    code, stdout, _ = run("config", "check", str(config_path))
    assert code == 2 and "set either cascade (an inline policy) or cascade_file" in stdout


def test_ledger_without_feedback(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger(url) as ledger:
        ledger.record(_row(1, "legal", 0.9, False))
    code, _, stderr = run(
        "cascade", "calibrate", "--from-ledger", "--ledger-url", url, "--target", "quality=0.9"
    )
    assert code == 1 and "no ledger rows with feedback to calibrate on" in stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/x", "cannot reach the ledger"),
        ("sqlite:////nonexistent/dir/ledger.db", "no ledger database at /nonexistent"),
        ("not a url", "is not a database URL"),
    ],
)
def test_unreachable_ledger(url: str, message: str) -> None:
    code, _, stderr = run(
        "cascade", "calibrate", "--from-ledger", "--ledger-url", url, "--target", "quality=0.9"
    )
    assert code == 1 and message in stderr


def test_from_ledger_with_a_config_and_bad_combinations(ledger_url: str, tmp_path: Path) -> None:
    config_path = tmp_path / "serve.yaml"
    config_path.write_text(yaml.safe_dump({**CONFIG, "ledger": {"url": ledger_url}}))
    out = tmp_path / "t.json"
    code, _, stderr = run(
        "cascade", "calibrate", "--from-ledger", "--config", str(config_path),
        "--target", "escalation=0.5", "--min-route-records", "5", "--out", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    routes = json.loads(out.read_text())["calibration"]["routes"]
    # legal escalates at least its 20 low-confidence rows; 30 of 60 allowed: best quality keeps
    # the 10 wrong answers at 0.51..0.60 out (threshold 0.61)
    assert routes["legal"]["threshold"] == 0.61 and routes["code"]["threshold"] == 0.0
    code, _, stderr = run("cascade", "calibrate", "--from-ledger", "--target", "quality=0.9")
    assert code == 2 and "exactly one of --config FILE and --ledger-url URL" in stderr
    code, _, stderr = run("cascade", "calibrate", "--target", "quality=0.9", "--out", str(out))
    assert code == 2 and "give --outcomes FILE, or --from-ledger" in stderr
