"""`spillway adapters`: the gate rule, exact-match selection, and the CLI's refusals (bad data
names file, line and fix; bad options) before any model is loaded. Pure and fast."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapter_training.compare import answerable_tasks
from adapter_training.data import Example, Message
from adapter_training.gate import gate_verdict
from orchestrator.cli import main


def test_gate_passes_only_by_the_margin() -> None:
    assert gate_verdict(2.0, 1.9, margin=0.02).passed  # 5% lower
    failed = gate_verdict(2.0, 1.99, margin=0.02)  # 0.5% lower
    assert not failed.passed and "not lower by the margin" in failed.reason
    assert failed.loss_improvement == pytest.approx(0.005)
    assert gate_verdict(2.0, 1.99, margin=0.0).passed


def test_gate_fails_when_exact_match_drops() -> None:
    verdict = gate_verdict(2.0, 1.5, base_exact_match=0.5, adapter_exact_match=0.4)
    assert not verdict.passed and "fewer exact matches" in verdict.reason
    assert gate_verdict(2.0, 1.5, base_exact_match=0.5, adapter_exact_match=0.5).passed


def test_gate_rejects_a_bad_margin() -> None:
    with pytest.raises(ValueError, match="margin"):
        gate_verdict(2.0, 1.0, margin=1.5)


def _example(*turns: tuple[str, str]) -> Example:
    return Example(messages=tuple(Message(role, content) for role, content in turns))


def test_exact_match_uses_single_turn_short_answers() -> None:
    short = _example(("user", "2+2?"), ("assistant", "4"))
    long = _example(("user", "explain"), ("assistant", "x" * 200))
    multi_line = _example(("user", "code"), ("assistant", "a\nb"))
    with_system = _example(("system", "be brief"), ("user", "q"), ("assistant", "a"))
    tasks = answerable_tasks([short, long, multi_line, with_system])
    assert [(t.question, t.answer) for t in tasks] == [("2+2?", "4")]


def _base_model(tmp_path: Path) -> Path:
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}", encoding="utf-8")
    return base


def _train(tmp_path: Path, lines: list[str], *extra: str) -> tuple[int, str]:
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["adapters", "train", "--data", str(data), "--out", str(tmp_path / "out")]
    args += ["--base-model", str(_base_model(tmp_path)), *extra]
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output


GOOD = json.dumps({"prompt": "q", "completion": "a"})


def test_train_names_the_bad_line_and_the_fix(tmp_path: Path) -> None:
    bad_role = json.dumps({"messages": [{"role": "bot", "content": "hi"}]})
    code, output = _train(tmp_path, [GOOD, bad_role])
    assert code != 0
    assert "train.jsonl, line 2" in output and "unknown role 'bot'" in output
    assert "use one of system, user, assistant" in output


def test_train_rejects_a_conversation_without_an_answer(tmp_path: Path) -> None:
    no_answer = json.dumps({"messages": [{"role": "user", "content": "q"}]})
    code, output = _train(tmp_path, [no_answer])
    assert code != 0 and "line 1" in output and "end each conversation" in output


def test_train_wants_validation_data_for_tiny_sets(tmp_path: Path) -> None:
    code, output = _train(tmp_path, [GOOD] * 3)
    assert code != 0 and "pass --val FILE" in output


def test_train_needs_a_model_directory(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text(GOOD + "\n", encoding="utf-8")
    args = ["adapters", "train", "--data", str(data), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(main, [*args, "--base-model", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no config.json" in result.output


def test_eval_refuses_a_directory_without_an_adapter(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(GOOD + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["adapters", "eval", "--adapter", str(tmp_path), "--data", str(data)]
    )
    assert result.exit_code == 2 and "is not a PEFT adapter dir" in result.output


def test_registry_commands_need_one_target(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["adapters", "list"])
    assert result.exit_code == 2 and "exactly one of --config FILE and --url URL" in result.output
    result = CliRunner().invoke(main, ["adapters", "list", "--url", "http://127.0.0.1:1"])
    assert result.exit_code == 2 and "--api-key" in result.output
    result = CliRunner().invoke(main, ["adapters", "promote", "legal", "--config", "x.yaml"])
    assert result.exit_code == 2 and "name a version" in result.output
