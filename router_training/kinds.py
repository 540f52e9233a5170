"""The registry of artifact kinds: the files each kind's directory holds and what loads it.

``artifact.load_router`` looks the manifest's kind up here. A kind's loader is named as data,
a ``"module:function"`` string, and imported with ``importlib`` only when an artifact of that
kind is loaded. So neither this module nor ``artifact`` imports a kind module: the kinds
(``tfidf``, ``encoder``, ``ensemble``) depend on the artifact format, never the reverse, and
no caller has to import a kind module first for its artifacts to load.

Adding a kind: write ``load_<kind>_scorer(directory, manifest) -> Scorer`` in its module, add
a ``KindSpec`` to ``KINDS`` below and the name to ``Manifest.kind``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Protocol, cast, runtime_checkable

import numpy as np

from router_training.manifest import ArtifactError, Manifest

__all__ = ["KINDS", "KindSpec", "QuickScorer", "Scorer", "ScorerLoader", "kind_spec"]


class Scorer(Protocol):
    """A model that maps texts to one logit per label."""

    @property
    def n_outputs(self) -> int: ...

    def logits(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class QuickScorer(Protocol):
    """A scorer that can often answer without its heavy part (a gated ensemble's gate, or a
    scorer with no heavy part at all), in well under a millisecond.

    ``quick_logits`` returns exactly what ``logits`` would for ``texts`` when no text needs the
    heavy part, else None (and then has counted nothing): a caller can try it inline and fall
    back to ``logits`` where the heavy part may run (a worker thread)."""

    def quick_logits(self, texts: Sequence[str]) -> np.ndarray | None: ...


ScorerLoader = Callable[[Path, Manifest], Scorer]


@dataclass(frozen=True, slots=True)
class KindSpec:
    """One artifact kind.

    ``loader`` is ``"module:function"``; the function takes the artifact directory and its
    manifest and returns a ``Scorer``. ``required_files``: for each inner tuple, at least one
    of its names must be listed in the manifest (and so present and hashed).
    """

    name: str
    loader: str
    required_files: tuple[tuple[str, ...], ...]

    def load_scorer(self, directory: Path, manifest: Manifest) -> Scorer:
        """Import the loader (the first time) and load the scorer of ``directory``."""
        module_name, _, function = self.loader.partition(":")
        loader = getattr(importlib.import_module(module_name), function)
        return cast(ScorerLoader, loader)(directory, manifest)


_TFIDF = (("tfidf.json",), ("tfidf.npz",))
_ENCODER = (("config.json",), ("tokenizer.json",), ("model.safetensors", "model.onnx"))

KINDS: Mapping[str, KindSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            KindSpec("tfidf", "router_training.tfidf:load_tfidf_scorer", _TFIDF),
            KindSpec(
                "hybrid",
                "router_training.tfidf:load_tfidf_scorer",
                (*_TFIDF, ("embed_vectors.npz",), ("embed_tokenizer.json",)),
            ),
            KindSpec("bert", "router_training.encoder:load_encoder_scorer", _ENCODER),
            KindSpec(
                "ensemble",
                "router_training.ensemble:load_ensemble_scorer",
                (*_ENCODER, *_TFIDF, ("ensemble.json",)),
            ),
        )
    }
)


def kind_spec(kind: str) -> KindSpec:
    """The registered kind ``kind``; ``ArtifactError`` naming the known kinds otherwise."""
    try:
        return KINDS[kind]
    except KeyError:
        raise ArtifactError(
            f"unknown router kind {kind!r} (known: {', '.join(sorted(KINDS))})"
        ) from None
