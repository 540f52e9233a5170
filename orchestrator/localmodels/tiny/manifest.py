"""Where the local models live, the build fingerprint, and the manifest that marks a build valid.

Pure and light (no torch): the up-to-date check runs on every `spillway models build` and must
answer in well under a second.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


@dataclass(frozen=True)
class ModelPaths:
    """The layout under `<state_dir>/tiny/`: small/, large/, adapters/<domain>/, manifest.json."""

    root: Path

    @property
    def small(self) -> Path:
        return self.root / "small"

    @property
    def large(self) -> Path:
        return self.root / "large"

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST_NAME

    def adapter(self, domain: str) -> Path:
        return self.root / "adapters" / domain

    def adapters(self, domains: tuple[str, ...]) -> dict[str, Path]:
        return {domain: self.adapter(domain) for domain in domains}


def tiny_model_paths(state_dir: Path) -> ModelPaths:
    """The tiny models' paths for a state dir (`.spillway/tiny/`); nothing is created or checked."""
    return ModelPaths(root=Path(state_dir) / "tiny")


def compute_fingerprint(corpus: dict[str, bytes], spec: dict[str, Any], version: str) -> str:
    """sha256 over the builder version, the hyperparameters and every corpus file's bytes.

    Any change to one of them means the models on disk no longer match the code: rebuild.
    """
    digest = hashlib.sha256()
    digest.update(f"builder={version}\n".encode())
    digest.update(json.dumps(spec, sort_keys=True, default=list).encode())
    for name in sorted(corpus):
        digest.update(f"\n{name}\n".encode())
        digest.update(hashlib.sha256(corpus[name]).digest())
    return digest.hexdigest()


def read_manifest(paths: ModelPaths) -> dict[str, Any] | None:
    """The manifest of a completed build, or None when there is none or it is unreadable."""
    try:
        data = json.loads(paths.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def missing_files(paths: ModelPaths, adapter_domains: tuple[str, ...]) -> list[Path]:
    """Files a complete build has that are absent (someone deleted part of the output)."""
    expected = [d / name for d in (paths.small, paths.large) for name in MODEL_FILES]
    for adapter_dir in paths.adapters(adapter_domains).values():
        expected += [adapter_dir / name for name in ADAPTER_FILES]
    return [path for path in expected if not path.is_file()]


def up_to_date_manifest(
    paths: ModelPaths, fingerprint: str, adapter_domains: tuple[str, ...]
) -> dict[str, Any] | None:
    """The existing manifest if it matches `fingerprint` and every file is present, else None."""
    manifest = read_manifest(paths)
    if manifest is None or manifest.get("fingerprint") != fingerprint:
        return None
    if missing_files(paths, adapter_domains):
        return None
    return manifest
