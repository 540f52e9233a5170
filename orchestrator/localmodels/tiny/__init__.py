"""Tiny stand-in models for fast tests: a byte-level BPE tokenizer, a small and a large Llama
model and domain LoRA adapters, all trained here in a minute or two from the shipped corpus.

Their answers are babble: use them only where a test's outcome does not depend on a model's
quality (serving mechanics, faults, load). The embedded default serves real models
(`orchestrator.localmodels.build`). Build with `spillway models build --tiny`, or
`build_tiny_models(state_dir)`; find them with `tiny_model_paths(state_dir)` (`.spillway/tiny/`).
Importing this package imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .data import ADAPTER_DOMAINS, DOMAINS, load_corpus, split_lines
from .manifest import ModelPaths, tiny_model_paths

if TYPE_CHECKING:
    from .build import build_tiny_models, evaluate_loss

__all__ = [
    "ADAPTER_DOMAINS",
    "DOMAINS",
    "ModelPaths",
    "build_tiny_models",
    "evaluate_loss",
    "load_corpus",
    "split_lines",
    "tiny_model_paths",
]


def __getattr__(name: str) -> object:
    """`build_tiny_models` and `evaluate_loss` come from .build, imported on first use."""
    if name in ("build_tiny_models", "evaluate_loss"):
        from . import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
