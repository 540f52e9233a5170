"""`spillway router apply` and `router train --apply`: the argument checks made before any
training or network call (the calls themselves: tests/integration/test_router_reload.py)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from orchestrator.cli import main

NO_ENV_KEY: dict[str, str | None] = {"SPILLWAY_API_KEY": None}


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=NO_ENV_KEY)
    return result.exit_code, result.output


def test_apply_needs_an_admin_key(tmp_path: Path) -> None:
    code, output = _run("router", "apply", str(tmp_path), "--url", "http://127.0.0.1:9")
    assert code == 2 and "--api-key" in output


def test_apply_needs_an_existing_directory(tmp_path: Path) -> None:
    code, output = _run("router", "apply", str(tmp_path / "nope"), "--url", "http://x")
    assert code == 2 and "does not exist" in output


def test_train_apply_is_only_for_from_ledger(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "a", "label": "x"}\n')
    code, output = _run(
        "router", "train", "--data", str(data), "--out", str(tmp_path / "o"),
        "--apply", "http://127.0.0.1:9", "--api-key", "k",
    )  # fmt: skip
    assert code == 2 and "router apply" in output and not (tmp_path / "o").exists()
