"""`spillway cascade calibrate --from-ledger --signal learned` on a real SQLite ledger: the
logistic regression fitted on the signals the ledger recorded (migration 0006), whatever signal
decided the rows, and a thresholds file whose policy decides with it."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import yaml

from cascade.calibrate import policy_from_file_data
from cascade.confidence import FEATURE_NAMES
from cascade.policy import Signal
from orchestrator.ledger import Ledger
from tests.integration.test_cascade_ledger_cli import run
from tests.unit.test_ledger_row import T0, make_row


def _signals(good: bool, i: int) -> dict[str, float]:
    """Right answers are surer at their least likely token; mean_prob alone does not tell."""
    low = (0.6 if good else 0.1) + 0.01 * i
    return {
        "mean_prob": 0.8 - 0.005 * i,
        "geometric_mean": 0.7,
        "min_prob": low,
        "quantile": low + 0.05,
        "first_k": 0.8,
    }


def _seed(url: str, with_signals: bool = True) -> None:
    with Ledger(url) as ledger:
        for i in range(40):
            good = i % 2 == 0
            ledger.record(
                make_row(
                    query_id=f"q{i}", created_at=T0 + timedelta(seconds=i), route="legal",
                    adapter="legal", escalated=False, escalation_reason=None,
                    answered_by="legal", confidence=0.8 - 0.005 * i,
                    confidence_signal="mean_prob", cost_small_usd=Decimal("0.001"),
                    cost_large_usd=Decimal(0), baseline_cost_usd=Decimal("0.01"),
                    signals=_signals(good, i) if with_signals else None,
                )
            )  # fmt: skip
        assert ledger.flush()
        for i in range(40):
            ledger.add_feedback(f"q{i}", 1.0 if i % 2 == 0 else 0.0)


def test_learned_signal_from_ledger_feedback(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    _seed(url)
    out = tmp_path / "learned.yaml"
    code, stdout, stderr = run(
        "cascade", "calibrate", "--from-ledger", "--ledger-url", url, "--signal", "learned",
        "--large-quality", "1.0", "--target", "quality=1.0", "--out", str(out), "--json",
    )  # fmt: skip
    assert code == 0, stderr
    data = json.loads(stdout)
    assert data == yaml.safe_load(out.read_text())
    assert data["calibration"]["source"]["score"] == "learned"
    assert data["calibration"]["source"]["records"] == 40
    policy = policy_from_file_data(data)
    learned = policy.default.learned
    assert policy.default.signal is Signal.learned and learned is not None
    assert set(learned.coefficients) == set(FEATURE_NAMES)
    assert learned.coefficients["min_prob"] > 0  # the feature that separates right from wrong
    # Every wrong answer scores below every right one; keeping all of the large model's quality
    # escalates exactly the wrong ones.
    right = [learned.score_features(_signals(True, i)) for i in range(0, 40, 2)]
    wrong = [learned.score_features(_signals(False, i)) for i in range(1, 40, 2)]
    assert max(wrong) < policy.default.threshold <= min(right)


def test_learned_needs_recorded_signals(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    _seed(url, with_signals=False)
    code, _, stderr = run(
        "cascade", "calibrate", "--from-ledger", "--ledger-url", url, "--signal", "learned",
        "--large-quality", "1.0", "--target", "quality=0.5", "--out", str(tmp_path / "t.yaml"),
    )  # fmt: skip
    assert code != 0
    assert "skipped 40 row(s) without signals" in stderr
    assert "ledger rows with signals (written since migration 0006)" in stderr


def test_learned_is_refused_for_an_outcome_file(tmp_path: Path) -> None:
    data = tmp_path / "o.jsonl"
    data.write_text('{"text": "a", "small_correct": true, "large_correct": true}\n')
    code, _, stderr = run(
        "cascade", "calibrate", "--outcomes", str(data), "--signal", "learned",
        "--target", "quality=0.5", "--out", str(tmp_path / "t.yaml"),
    )  # fmt: skip
    assert code != 0 and "--signal learned is fitted from feedback" in stderr
