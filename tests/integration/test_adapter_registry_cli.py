"""`spillway adapters list|add|promote|canary|rollback|remove --config FILE`: the registry in
the config's state directory, changed without a service (a running one picks it up on its next
request), with the errors a user can act on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from orchestrator.cli import main
from tests.fakes import CONFIG


def _setup(tmp_path: Path) -> Path:
    data = json.loads(json.dumps(CONFIG))
    data["server"] = {"state_dir": str(tmp_path / "state")}
    data["tenants"] = [{"name": "acme", "api_keys": ["k"]}]
    config = tmp_path / "spillway.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    for rank, name in ((8, "v2"), (32, "big")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "adapter_config.json").write_text(json.dumps({"r": rank}), encoding="utf-8")
        (folder / "adapter_model.safetensors").write_bytes(b"w")
    return config


def _run(config: Path, *args: str) -> tuple[int, Any]:
    result = CliRunner().invoke(main, ["adapters", *args, "--config", str(config), "--json"])
    try:
        return result.exit_code, json.loads(result.output)
    except ValueError:
        return result.exit_code, result.output


def test_versions_through_the_config(tmp_path: Path) -> None:
    config = _setup(tmp_path)
    code, listed = _run(config, "list")
    assert code == 0 and [(r["name"], r["serving"]) for r in listed] == [("legal", "legal@1")]
    assert _run(config, "add", "legal", str(tmp_path / "v2")) == (0, {"added": "legal@2"})
    assert _run(config, "promote", "legal@2")[0] == 0
    assert _run(config, "canary", "legal@1", "--share", "0.2")[0] == 0
    legal = _run(config, "list")[1][0]
    assert (legal["serving"], legal["canary"], legal["canary_share"]) == ("legal@2", "legal@1", 0.2)
    assert _run(config, "rollback", "legal") == (0, {"result": "legal@1"})
    assert _run(config, "remove", "legal@2") == (0, {"result": ["legal@2"]})
    code, private = _run(config, "add", "mine", str(tmp_path / "v2"), "--tenant", "acme")
    assert code == 0 and private == {"added": "mine@1"}
    owners = {r["name"]: r["owner"] for r in _run(config, "list")[1]}
    assert owners == {"legal": None, "mine": "acme"}


def test_refusals_say_why(tmp_path: Path) -> None:
    config = _setup(tmp_path)
    code, output = _run(config, "add", "legal", str(tmp_path / "big"))
    assert code == 1 and "rank 32, above the small model's max_lora_rank 16" in output
    code, output = _run(config, "rollback", "legal")
    assert code == 1 and "no earlier version" in output
    code, output = _run(config, "add", "x", str(tmp_path / "v2"), "--tenant", "nobody")
    assert code == 2 and "no tenant named 'nobody'" in output
    code, output = _run(config, "remove", "legal@1")
    assert code == 1 and "promote or roll back to another first" in output
