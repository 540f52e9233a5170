"""The router artifact: a directory the service loads, validated eagerly.

Layout::

    manifest.json      ``manifest.Manifest``: format version, kind, runtime, labels, temperature,
                       abstain threshold, out-of-scope label, data hashes, metrics, file hashes
    README.md          model card (what it was trained on, how it scored)
    tfidf.json, tfidf.npz                      kind "tfidf"
    + embed_vectors.npz, embed_tokenizer.json  kind "hybrid" (static MiniLM sentence vectors)
    config.json, model.safetensors | model.onnx, tokenizer.json, ...   kind "bert"
    the "bert" files + the "tfidf" (or "hybrid") files + ensemble.json   kind "ensemble"

``load_router`` checks the manifest, every file's SHA-256 and runs one probe prediction, so a
corrupt artifact fails at load with an ``ArtifactError`` naming the path, never at a request.
Which files a kind needs and which function loads its model come from the kind registry
(``router_training.kinds``), so this module imports no model kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from router_training.calibration import softmax
from router_training.kinds import QuickScorer, Scorer, kind_spec
from router_training.manifest import (
    CARD,
    FORMAT_VERSION,
    MANIFEST,
    ArtifactError,
    Manifest,
    file_sha256,
    read_manifest,
    write_manifest,
)

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "ArtifactError",
    "LoadedRouter",
    "Manifest",
    "RoutePrediction",
    "Scorer",
    "load_router",
    "read_manifest",
    "write_manifest",
]


@dataclass(frozen=True, slots=True)
class RoutePrediction:
    """One routing decision.

    ``label`` is the top label (the out-of-scope label when that wins). ``abstained`` is True
    when the top label is out-of-scope or ``probability`` is below the abstain threshold:
    the service then answers with the base model; ``route`` is None in exactly that case.
    """

    label: str
    probability: float
    runner_up: str | None
    runner_up_probability: float
    abstained: bool

    @property
    def route(self) -> str | None:
        return None if self.abstained else self.label


class LoadedRouter:
    """A validated artifact ready to predict."""

    def __init__(self, path: Path, manifest: Manifest, scorer: Scorer) -> None:
        self.path = path
        self.manifest = manifest
        self.labels: list[str] = list(manifest.labels)
        self.version: str = manifest.version()
        self._scorer = scorer
        self._oos = (
            self.labels.index(manifest.out_of_scope_label)
            if manifest.out_of_scope_label is not None
            else -1
        )

    def __repr__(self) -> str:
        return f"LoadedRouter({str(self.path)!r}, version={self.version!r})"

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities, shape (len(texts), len(labels))."""
        if not texts:
            return np.zeros((0, len(self.labels)))
        logits = np.asarray(self._scorer.logits(list(texts)), dtype=np.float64)
        return softmax(logits, self.manifest.temperature)

    def quick_probabilities(self, texts: Sequence[str]) -> np.ndarray | None:
        """`probabilities`, when the model can give every one without its heavy part (a gated
        ensemble's gate answers them all: well under a millisecond); else None."""
        scorer = self._scorer
        if not texts or not isinstance(scorer, QuickScorer):
            return None
        logits = scorer.quick_logits(list(texts))
        if logits is None:
            return None
        return softmax(np.asarray(logits, dtype=np.float64), self.manifest.temperature)

    def predict(self, texts: Sequence[str]) -> list[RoutePrediction]:
        if isinstance(texts, str):
            raise TypeError("predict takes a sequence of texts; wrap a single query in a list")
        probs = self.probabilities(texts)
        return [self._decide(row) for row in probs]

    def predict_quick(self, texts: Sequence[str]) -> list[RoutePrediction] | None:
        """`predict`'s answers (the same), when `quick_probabilities` has them; else None: the
        caller runs `predict` where the heavy part may take its milliseconds."""
        if isinstance(texts, str):
            raise TypeError("predict takes a sequence of texts; wrap a single query in a list")
        probs = self.quick_probabilities(texts)
        return None if probs is None else [self._decide(row) for row in probs]

    def _decide(self, row: np.ndarray) -> RoutePrediction:
        order = np.argsort(row)[::-1][:2]
        top, second = int(order[0]), int(order[1])
        probability = float(row[top])
        abstained = top == self._oos or probability < self.manifest.abstain_threshold
        return RoutePrediction(
            label=self.labels[top],
            probability=probability,
            runner_up=self.labels[second],
            runner_up_probability=float(row[second]),
            abstained=abstained,
        )


def load_router(path: str | Path) -> LoadedRouter:
    """Load and fully validate a router artifact directory; raise ``ArtifactError`` if unusable."""
    path = Path(path)
    manifest = read_manifest(path)
    _check_files(path, manifest)
    try:
        scorer = kind_spec(manifest.kind).load_scorer(path, manifest)
    except ArtifactError:
        raise
    except Exception as error:
        raise ArtifactError(f"{path}: the {manifest.kind} model does not load: {error}") from error
    router = LoadedRouter(path, manifest, scorer)
    _probe(router)
    return router


def _check_files(path: Path, manifest: Manifest) -> None:
    for alternatives in kind_spec(manifest.kind).required_files:
        if not any(name in manifest.files for name in alternatives):
            raise ArtifactError(
                f"{path}: a {manifest.kind} artifact needs {' or '.join(alternatives)}, "
                "which the manifest does not list"
            )
    for name, expected in manifest.files.items():
        file = path / name
        if not file.is_file():
            raise ArtifactError(f"{path}: {name} is missing (listed in {MANIFEST})")
        if file_sha256(file) != expected:
            raise ArtifactError(
                f"{path}: {name} does not match its SHA-256 in {MANIFEST} (corrupt or modified "
                "after export); re-export the router"
            )
    if not (path / CARD).is_file():
        raise ArtifactError(f"{path}: the model card {CARD} is missing")


def _probe(router: LoadedRouter) -> None:
    """One prediction at load: catches label/output mismatches and warms the model up."""
    try:
        logits = np.asarray(router._scorer.logits(["probe query"]))
    except Exception as error:
        raise ArtifactError(f"{router.path}: the model fails on a probe query: {error}") from error
    if logits.shape != (1, len(router.labels)):
        raise ArtifactError(
            f"{router.path}: the model has {logits.shape[-1]} outputs but the manifest lists "
            f"{len(router.labels)} labels"
        )
    if not np.isfinite(logits).all():
        raise ArtifactError(f"{router.path}: the model produces non-finite logits")
