"""Build fingerprint, manifest validity and the model layout (pure, no torch)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from orchestrator.localmodels.tiny.build import current_fingerprint
from orchestrator.localmodels.tiny.data import ADAPTER_DOMAINS, corpus_bytes
from orchestrator.localmodels.tiny.manifest import (
    ADAPTER_FILES,
    MODEL_FILES,
    compute_fingerprint,
    tiny_model_paths,
    up_to_date_manifest,
)
from orchestrator.localmodels.tiny.spec import BUILDER_VERSION, DEFAULT_SPEC

CORPUS = {"legal": b"The tenant shall pay.\n", "code": b"def f(): return 1\n"}
SPEC = {"seed": 0, "small": {"hidden_size": 64}}


def test_fingerprint_is_stable_and_order_independent() -> None:
    first = compute_fingerprint(CORPUS, SPEC, "1")
    reordered = dict(reversed(list(CORPUS.items())))
    assert compute_fingerprint(reordered, dict(reversed(list(SPEC.items()))), "1") == first
    assert len(first) == 64


def test_fingerprint_changes_with_corpus_spec_and_version() -> None:
    base = compute_fingerprint(CORPUS, SPEC, "1")
    edited = {**CORPUS, "legal": b"The tenant shall pay rent.\n"}
    assert compute_fingerprint(edited, SPEC, "1") != base
    assert compute_fingerprint(CORPUS, {**SPEC, "seed": 1}, "1") != base
    assert compute_fingerprint(CORPUS, SPEC, "2") != base
    assert compute_fingerprint({**CORPUS, "general": b""}, SPEC, "1") != base


def test_current_fingerprint_covers_the_shipped_corpus_and_default_spec() -> None:
    expected = compute_fingerprint(corpus_bytes(), DEFAULT_SPEC.to_dict(), BUILDER_VERSION)
    assert current_fingerprint() == expected
    changed = replace(DEFAULT_SPEC, seed=DEFAULT_SPEC.seed + 1)
    assert current_fingerprint(changed) != expected


def test_layout_under_the_state_dir(tmp_path: Path) -> None:
    paths = tiny_model_paths(tmp_path)
    assert paths.small == tmp_path / "tiny" / "small"
    assert paths.large == tmp_path / "tiny" / "large"
    assert paths.adapter("legal") == tmp_path / "tiny" / "adapters" / "legal"
    assert paths.manifest == tmp_path / "tiny" / "manifest.json"


def _fake_build(tmp_path: Path, fingerprint: str) -> None:
    paths = tiny_model_paths(tmp_path)
    for model_dir in (paths.small, paths.large):
        model_dir.mkdir(parents=True)
        for name in MODEL_FILES:
            (model_dir / name).write_text("{}")
    for adapter_dir in paths.adapters(ADAPTER_DOMAINS).values():
        adapter_dir.mkdir(parents=True)
        for name in ADAPTER_FILES:
            (adapter_dir / name).write_text("{}")
    paths.manifest.write_text(json.dumps({"fingerprint": fingerprint}))


def test_manifest_is_valid_only_when_fingerprint_and_files_match(tmp_path: Path) -> None:
    paths = tiny_model_paths(tmp_path)
    assert up_to_date_manifest(paths, "abc", ADAPTER_DOMAINS) is None
    _fake_build(tmp_path, "abc")
    assert up_to_date_manifest(paths, "abc", ADAPTER_DOMAINS) == {"fingerprint": "abc"}
    assert up_to_date_manifest(paths, "other", ADAPTER_DOMAINS) is None
    (paths.adapter("code") / "adapter_model.safetensors").unlink()
    assert up_to_date_manifest(paths, "abc", ADAPTER_DOMAINS) is None


def test_corrupt_manifest_means_not_built(tmp_path: Path) -> None:
    _fake_build(tmp_path, "abc")
    tiny_model_paths(tmp_path).manifest.write_text("{not json")
    assert up_to_date_manifest(tiny_model_paths(tmp_path), "abc", ADAPTER_DOMAINS) is None


def test_importing_the_package_and_cli_does_not_import_torch() -> None:
    code = (
        "import sys, orchestrator.localmodels, orchestrator.localmodels.tiny.build, "
        "orchestrator.localmodels.build, orchestrator.localmodels.router, "
        "orchestrator.cli.models; print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
