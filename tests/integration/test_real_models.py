"""The real models `spillway models build` puts under `.spillway/models/`: their manifest, the
hashes it pins, the second build that does nothing, and the adapters that help their domain.

The session fixture builds them if missing (`make test` already did: a no-op then)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli import main
from orchestrator.localmodels.build import build_models, up_to_date
from orchestrator.localmodels.fetch import sha256_file
from orchestrator.localmodels.lora import ADAPTER_DOMAINS, shipped_adapter_dir
from orchestrator.localmodels.paths import ModelPaths, model_paths
from orchestrator.localmodels.sources import DEFAULT_SOURCES

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / ".spillway"


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return build_models(STATE, progress=False)


@pytest.fixture(scope="module")
def paths(manifest: dict[str, Any]) -> ModelPaths:
    return model_paths(STATE)


def test_manifest_records_source_license_and_hashes(
    manifest: dict[str, Any], paths: ModelPaths
) -> None:
    for name, source in DEFAULT_SOURCES.items():
        info = manifest["models"][name]
        assert info["source"]["gguf_sha256"] == source.gguf_sha256
        assert info["source"]["license"].startswith("Apache-2.0")
        assert (
            info["source"]["packages"][0] == f"{source.parts[0].package}=={source.parts[0].version}"
        )
        weights = paths.model(name) / "model.safetensors"
        assert info["files_sha256"]["model.safetensors"] == sha256_file(weights)
        assert info["architecture"] == "Qwen2ForCausalLM" and info["dtype"] == "bfloat16"
    small, large = (manifest["models"][n]["parameters"] for n in ("small", "large"))
    assert 0.4e9 < small < 0.8e9 and 1.4e9 < large < 2.0e9


def test_the_chat_template_survives_conversion(paths: ModelPaths) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(paths.small))
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert "<|im_start|>user\nhi<|im_end|>" in text and text.endswith("<|im_start|>assistant\n")
    assert tokenizer.eos_token == "<|im_end|>"


def test_adapters_are_installed_for_this_base(manifest: dict[str, Any], paths: ModelPaths) -> None:
    for domain in ADAPTER_DOMAINS:
        info = manifest["adapters"][domain]
        assert info["same_base"], f"{domain} was trained on another build of the small model"
        installed = paths.adapter(domain)
        config = json.loads((installed / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == str(paths.small.resolve())
        shipped = shipped_adapter_dir(domain) / "adapter_model.safetensors"
        assert sha256_file(installed / "adapter_model.safetensors") == sha256_file(shipped)


def test_a_second_build_changes_nothing(manifest: dict[str, Any], paths: ModelPaths) -> None:
    before = {p: p.stat().st_mtime_ns for p in paths.root.rglob("*") if p.is_file()}
    assert up_to_date(STATE) == manifest
    result = CliRunner().invoke(
        main, ["models", "build", "--state-dir", str(STATE), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output and "nothing to do" in result.output
    after = {p: p.stat().st_mtime_ns for p in paths.root.rglob("*") if p.is_file()}
    assert after == before
