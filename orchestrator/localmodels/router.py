"""The default router of the local config: trained from the labelled sample the project ships.

Rebuilt only when the sample or the recipe changes (the artifact records the data's hash and
the recipe is pinned here), so `make serve` after the first run starts at once.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

# The recipe of the local router: BERT-tiny from scratch with a WordPiece tokenizer trained on
# the sample, served through ONNX Runtime. The templated sample's hold-out is perfectly
# separable, so a data-driven abstain threshold would land near 0.99 and send most real
# queries to the base model; a fixed 0.5 is used instead (docs/router.md).
# Bump RECIPE when these change.
RECIPE = "bert-tiny-scratch-v2"
TRAIN_OPTIONS: dict[str, Any] = {"kind": "bert", "seed": 0, "abstain_target": "fixed=0.5"}


def sample_path() -> Path:
    """router_training/samples/domains.jsonl: legal / medical / code / general queries."""
    return Path(str(resources.files("router_training.samples").joinpath("domains.jsonl")))


def router_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "router"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def router_up_to_date(state_dir: Path) -> dict[str, Any] | None:
    """The artifact's manifest if it was trained from the current sample with this recipe."""
    manifest_file = router_dir(state_dir) / "manifest.json"
    stamp_file = router_dir(state_dir) / "spillway-recipe.txt"
    if not manifest_file.is_file() or not stamp_file.is_file():
        return None
    manifest: dict[str, Any] = json.loads(manifest_file.read_text())
    current = manifest.get("data_sha256") == _sha256(sample_path())
    return manifest if current and stamp_file.read_text().strip() == RECIPE else None


def build_default_router(state_dir: Path, *, force: bool = False, progress: bool = True) -> bool:
    """Train the local router unless it is up to date; True when it was (re)built."""
    if not force and router_up_to_date(state_dir) is not None:
        return False
    from router_training.train import train_router

    out = router_dir(state_dir)
    train_router(sample_path(), out, progress=progress, **TRAIN_OPTIONS)
    (out / "spillway-recipe.txt").write_text(RECIPE + "\n")
    return True
