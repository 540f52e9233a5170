"""`spillway cascade eval|calibrate|outcomes` through click, on small files written here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from orchestrator.cli import main


def _write(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _synthetic(n: int = 400, seed: int = 0) -> list[dict[str, Any]]:
    """The score is informative: a hidden difficulty drives both score and correctness."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        hard = rng.random()
        large = bool(rng.random() > hard * 0.6)
        small = bool(large and hard < 0.5)
        records.append(
            {
                "text": f"question {i}",
                "small_correct": small,
                "large_correct": large,
                "small_cost": 0.0001,
                "large_cost": 0.001,
                "score": round(float(np.clip(1 - hard + rng.normal(0, 0.05), 0, 1)), 3),
                "route": ["legal", "code", "general"][i % 3],
                "logprobs": [float(-hard * 2)] * 3,
            }
        )
    return records


def _run(*args: str) -> Any:
    return CliRunner().invoke(main, ["cascade", *args], catch_exceptions=False)


def test_help_explains_every_command() -> None:
    for command in ("eval", "calibrate", "outcomes"):
        result = _run(command, "--help")
        assert result.exit_code == 0
        assert "--outcomes" in result.output or "--from-mmlu-pro" in result.output


def test_eval_json_has_the_contract_keys(tmp_path: Path) -> None:
    path = _write(tmp_path / "o.jsonl", _synthetic())
    result = _run("eval", "--outcomes", str(path), "--json", "--random-draws", "5")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for key in (
        "apgr",
        "cpt_50",
        "cpt_80",
        "quality_small",
        "quality_large",
        "savings_at_95pct_quality",
        "random_apgr",
        "curve",
    ):
        assert key in data
    assert data["apgr"] > data["random_apgr"] + 0.1
    assert set(data["by_route"]) == {"legal", "code", "general"}
    table = _run("eval", "--outcomes", str(path), "--random-draws", "2")
    assert "apgr" in table.output and "route legal" in table.output


def test_eval_with_signal_from_logprobs(tmp_path: Path) -> None:
    path = _write(tmp_path / "o.jsonl", _synthetic())
    result = _run("eval", "--outcomes", str(path), "--signal", "min_prob", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["mode"] == "cascade"


def test_calibrate_writes_a_policy_the_eval_meets(tmp_path: Path) -> None:
    path = _write(tmp_path / "o.jsonl", _synthetic())
    out = tmp_path / "thresholds.yaml"
    result = _run(
        "calibrate",
        "--outcomes",
        str(path),
        "--target",
        "quality=0.9",
        "--out",
        str(out),
        "--min-route-records",
        "10",
    )
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(out.read_text())
    assert set(data["policy"]["routes"]) == {"legal", "code", "general"}
    assert data["calibration"]["target"] == {"kind": "quality", "value": 0.9}
    evaluated = _run("eval", "--outcomes", str(path), "--thresholds", str(out), "--json")
    point = json.loads(evaluated.output)["thresholds"]
    assert point["quality"] >= 0.9 * point["quality_large"]
    as_json = tmp_path / "t.json"
    _run("calibrate", "--outcomes", str(path), "--target", "escalation=0.2", "--out", str(as_json))
    assert json.loads(as_json.read_text())["calibration"]["default"]["escalation_rate"] <= 0.2


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "no outcome records"),
        (
            '{"text": "a", "small_correct": true, "large_correct": true, "score": 0.5}\n'
            '{"text": "b", "large_correct": true, "score": 0.5}\n',
            "line 2, field 'small_correct': missing required field",
        ),
        (
            '{"text": "a", "small_correct": 2, "large_correct": true, "score": 0.5}\n',
            "line 1, field 'small_correct': value 2.0 is outside [0, 1]",
        ),
        (
            '{"text": "a", "small_correct": 1, "large_correct": true, "score": 1.5}\n',
            "line 1, field 'score': value 1.5 is outside [0, 1]",
        ),
        (
            '{"text": "a", "small_correct": 1, "large_correct": true}\n',
            "line 1, field 'score': missing score",
        ),
        ("\n{not json\n", "line 2: not valid JSON"),
    ],
)
def test_bad_outcome_files_fail_with_file_line_and_field(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    for command in (["eval"], ["calibrate", "--target", "quality=0.9"]):
        result = CliRunner().invoke(main, ["cascade", *command, "--outcomes", str(path)])
        assert result.exit_code != 0
        assert str(path) in result.output and expected in result.output


def test_usage_errors(tmp_path: Path) -> None:
    path = _write(tmp_path / "o.jsonl", _synthetic(20))
    runner = CliRunner()
    both = runner.invoke(
        main,
        [
            "cascade",
            "eval",
            "--outcomes",
            str(path),
            "--score-field",
            "score",
            "--signal",
            "min_prob",
        ],
    )
    assert both.exit_code == 2 and "only one of" in both.output
    target = runner.invoke(
        main, ["cascade", "calibrate", "--outcomes", str(path), "--target", "speed=3"]
    )
    assert target.exit_code == 2 and "--target" in target.output
    cost = runner.invoke(
        main,
        [
            "cascade",
            "calibrate",
            "--outcomes",
            str(path),
            "--target",
            "cost=0.001",
            "--out",
            str(tmp_path / "x.yaml"),
        ],
    )
    assert cost.exit_code == 1 and "no threshold meets cost=0.001" in cost.output


def _fake_mmlu_pro(directory: Path) -> Path:
    directory.mkdir()
    questions = [
        {
            "question_id": i,
            "text": f"What is {i}?",
            "label": "legal" if i % 2 else "code",
            "category": "law" if i % 2 else "computer science",
            "options": ["a", "b"],
        }
        for i in range(6)
    ]
    _write(directory / "questions.jsonl", questions)
    header = "question_id,category,src,Small,Large\n"
    rows = "".join(f"{i},c,s,{i % 2},{1 if i < 5 else ''}\n" for i in range(6))
    (directory / "correct_matrix.csv").write_text(header + rows)
    chars = "".join(f"{i},c,s,400,800\n" for i in range(6))
    (directory / "output_chars_matrix.csv").write_text(header + chars)
    return directory


def test_outcomes_from_mmlu_pro(tmp_path: Path) -> None:
    source = _fake_mmlu_pro(tmp_path / "mmlu")
    out = tmp_path / "out.jsonl"
    result = _run(
        "outcomes",
        "--from-mmlu-pro",
        str(source),
        "--small",
        "Small",
        "--large",
        "Large",
        "--out",
        str(out),
        "--small-price",
        "1,2",
        "--large-price",
        "10,20",
    )
    assert result.exit_code == 0, result.output
    assert "wrote 5 records" in result.output and "1 without a result" in result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records[1]["small_correct"] is True and records[0]["route"] == "code"
    # prompt: 10 chars + 2 options of 1 char (+4 each) = 20 chars = 5 tokens
    assert records[0]["small_cost"] == pytest.approx((5 * 1 + 100 * 2) / 1e6)
    config = tmp_path / "serve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "small": {"price": {"input_per_million": 1, "output_per_million": 2}},
                "large": {"price": {"input_per_million": 10, "output_per_million": 20}},
            }
        )
    )
    again = _run(
        "outcomes",
        "--from-mmlu-pro",
        str(source),
        "--small",
        "Small",
        "--large",
        "Large",
        "--out",
        str(out),
        "--prices-from",
        str(config),
    )
    assert again.exit_code == 0
    assert json.loads(out.read_text().splitlines()[0])["large_cost"] == pytest.approx(
        (5 * 10 + 200 * 20) / 1e6
    )


def test_outcomes_from_mmlu_pro_names_an_unknown_model(tmp_path: Path) -> None:
    source = _fake_mmlu_pro(tmp_path / "mmlu")
    out = tmp_path / "out.jsonl"
    unknown = CliRunner().invoke(
        main,
        [
            "cascade",
            "outcomes",
            "--from-mmlu-pro",
            str(source),
            "--small",
            "Nope",
            "--large",
            "Large",
            "--out",
            str(out),
        ],
    )
    assert unknown.exit_code == 1 and "unknown model(s) ['Nope']" in unknown.output


def test_eval_with_a_boolean_router_scorer(tmp_path: Path) -> None:
    train = pytest.importorskip("router_training.train")
    rng = np.random.default_rng(0)
    words = {True: ["easy", "simple", "basic"], False: ["hard", "proof", "integral"]}
    rows, records = [], []
    for i in range(240):
        enough = bool(i % 2)
        text = f"{rng.choice(words[enough])} question {rng.choice(words[enough])} {i}"
        rows.append({"text": text, "label": enough})
        records.append(
            {
                "text": text,
                "small_correct": enough,
                "large_correct": True,
                "small_cost": 0.1,
                "large_cost": 1.0,
            }
        )
    data = _write(tmp_path / "labelled.jsonl", rows)
    train.train_router(data, tmp_path / "router", kind="tfidf", progress=False)
    outcomes = _write(tmp_path / "o.jsonl", records)
    result = _run(
        "eval",
        "--outcomes",
        str(outcomes),
        "--scorer",
        str(tmp_path / "router"),
        "--json",
        "--random-draws",
        "3",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["mode"] == "route"
    assert report["apgr"] == pytest.approx(report["oracle_apgr"], abs=0.01)  # perfect
    assert report["savings_at_95pct_quality"] > 0.3
    wrong = CliRunner().invoke(
        main, ["cascade", "eval", "--outcomes", str(outcomes), "--scorer", str(tmp_path)]
    )
    assert wrong.exit_code == 1 and "cannot load the router" in wrong.output
