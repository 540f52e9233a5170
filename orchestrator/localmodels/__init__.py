"""Local stand-in models for the CPU stack: a byte-level BPE tokenizer, a small and a large
Llama model and domain LoRA adapters, all trained here from the shipped corpus.

Build with `spillway models build`, or `build_local_models(state_dir)`; find them with
`local_model_paths(state_dir)`. Importing this package imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .data import ADAPTER_DOMAINS, DOMAINS, load_corpus, split_lines
from .manifest import ModelPaths, local_model_paths

if TYPE_CHECKING:
    from .build import build_local_models, evaluate_loss

__all__ = [
    "ADAPTER_DOMAINS",
    "DOMAINS",
    "ModelPaths",
    "build_local_models",
    "evaluate_loss",
    "load_corpus",
    "local_model_paths",
    "split_lines",
]


def __getattr__(name: str) -> object:
    """`build_local_models` and `evaluate_loss` come from .build, imported on first use."""
    if name in ("build_local_models", "evaluate_loss"):
        from . import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
