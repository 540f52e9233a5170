"""The router artifact: a directory the service loads, validated eagerly.

Layout::

    manifest.json      Manifest below: format version, kind, runtime, labels, temperature,
                       abstain threshold, out-of-scope label, data hashes, metrics, file hashes
    README.md          model card (what it was trained on, how it scored)
    tfidf.json, tfidf.npz                      kind "tfidf"
    + embed_vectors.npz, embed_tokenizer.json  kind "hybrid" (static MiniLM sentence vectors)
    config.json, model.safetensors | model.onnx, tokenizer.json, ...   kind "bert"
    the "bert" files + the "tfidf" (or "hybrid") files + ensemble.json   kind "ensemble"

``load_router`` checks the manifest, every file's SHA-256 and runs one probe prediction, so a
corrupt artifact fails at load with an ``ArtifactError`` naming the path, never at a request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from router_training.calibration import softmax

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "ArtifactError",
    "LoadedRouter",
    "Manifest",
    "RoutePrediction",
    "Scorer",
    "load_router",
    "write_manifest",
]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CARD = "README.md"
_REQUIRED_FILES: dict[str, tuple[tuple[str, ...], ...]] = {
    # each inner tuple: at least one of these must be listed and present
    "tfidf": (("tfidf.json",), ("tfidf.npz",)),
    "hybrid": (("tfidf.json",), ("tfidf.npz",), ("embed_vectors.npz",), ("embed_tokenizer.json",)),
    "bert": (("config.json",), ("tokenizer.json",), ("model.safetensors", "model.onnx")),
    "ensemble": (
        ("config.json",),
        ("tokenizer.json",),
        ("model.safetensors", "model.onnx"),
        ("tfidf.json",),
        ("tfidf.npz",),
        ("ensemble.json",),
    ),
}


class ArtifactError(Exception):
    """The router artifact is missing, incomplete, corrupt or inconsistent."""


class Manifest(BaseModel):
    """``manifest.json``: everything needed to use and audit a router artifact."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = Field(description="Artifact format version; this code reads 1.")
    kind: Literal["tfidf", "hybrid", "bert", "ensemble"] = Field(description="Model family.")
    runtime: Literal["sklearn", "torch", "onnx"] = Field(description="Inference engine.")
    labels: list[str] = Field(min_length=2, description="Output labels, in logit order.")
    boolean_labels: bool = Field(False, description="Labels came from booleans (true/false).")
    out_of_scope_label: str | None = Field(
        None, description="Label meaning 'fits no adapter'; predicting it abstains."
    )
    temperature: float = Field(gt=0, description="Softmax temperature fitted on validation.")
    abstain_threshold: float = Field(
        ge=0, le=1, description="Abstain when the calibrated top probability is below this."
    )
    abstain_target: str = Field("none", description="What the threshold was chosen for.")
    max_length: int | None = Field(None, description="Tokens per query (encoders).")
    pooling: Literal["mean", "cls"] | None = Field(None, description="Encoder pooling.")
    data_sha256: str = Field(description="SHA-256 of the training data file.")
    val_sha256: str | None = Field(None, description="SHA-256 of the validation file, if any.")
    validation: str = Field(description="Where validation data came from.")
    train_examples: int = Field(ge=0, description="Rows the model was trained on.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Validation metrics.")
    params: dict[str, Any] = Field(default_factory=dict, description="Training parameters.")
    created_at: str = Field(description="UTC time of export, ISO 8601.")
    files: dict[str, str] = Field(description="Relative path -> SHA-256 of every model file.")

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels are not unique: {self.labels}")
        if self.out_of_scope_label is not None and self.out_of_scope_label not in self.labels:
            raise ValueError(f"out_of_scope_label {self.out_of_scope_label!r} not in labels")
        return self

    def version(self) -> str:
        """Short id of what decides predictions: model files, labels and calibration."""
        content = {
            "files": dict(sorted(self.files.items())),
            "labels": self.labels,
            "kind": self.kind,
            "runtime": self.runtime,
            "temperature": round(self.temperature, 6),
            "abstain_threshold": round(self.abstain_threshold, 6),
            "out_of_scope_label": self.out_of_scope_label,
            "max_length": self.max_length,
            "pooling": self.pooling,
        }
        blob = json.dumps(content, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


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


class Scorer(Protocol):
    """A model that maps texts to one logit per label."""

    @property
    def n_outputs(self) -> int: ...

    def logits(self, texts: Sequence[str]) -> np.ndarray: ...


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

    def predict(self, texts: Sequence[str]) -> list[RoutePrediction]:
        if isinstance(texts, str):
            raise TypeError("predict takes a sequence of texts; wrap a single query in a list")
        probs = self.probabilities(texts)
        return [self._decide(row) for row in probs]

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


def write_manifest(directory: Path, **fields: Any) -> Manifest:
    """Hash the model files already in ``directory`` and write ``manifest.json``."""
    names = fields.pop("file_names")
    files = {name: _sha256(directory / name) for name in sorted(names)}
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        files=files,
        **fields,
    )
    (directory / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


def load_router(path: str | Path) -> LoadedRouter:
    """Load and fully validate a router artifact directory; raise ``ArtifactError`` if unusable."""
    path = Path(path)
    manifest = read_manifest(path)
    _check_files(path, manifest)
    try:
        scorer = _load_scorer(path, manifest)
    except ArtifactError:
        raise
    except Exception as error:
        raise ArtifactError(f"{path}: the {manifest.kind} model does not load: {error}") from error
    router = LoadedRouter(path, manifest, scorer)
    _probe(router)
    return router


def read_manifest(path: Path) -> Manifest:
    if not path.is_dir():
        raise ArtifactError(f"{path}: not a directory (a router artifact is a directory)")
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(f"{path}: {MANIFEST} is missing; re-export the router")
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{manifest_path}: not valid JSON ({error})") from None
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{manifest_path}: format_version {version!r} is not supported (this code reads "
            f"{FORMAT_VERSION}); re-export the router with this version of Spillway"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'manifest'}: {e['msg']}"
            for e in error.errors()
        )
        raise ArtifactError(f"{manifest_path}: invalid manifest: {problems}") from None


def _check_files(path: Path, manifest: Manifest) -> None:
    for alternatives in _REQUIRED_FILES[manifest.kind]:
        if not any(name in manifest.files for name in alternatives):
            raise ArtifactError(
                f"{path}: a {manifest.kind} artifact needs {' or '.join(alternatives)}, "
                "which the manifest does not list"
            )
    for name, expected in manifest.files.items():
        file = path / name
        if not file.is_file():
            raise ArtifactError(f"{path}: {name} is missing (listed in {MANIFEST})")
        if _sha256(file) != expected:
            raise ArtifactError(
                f"{path}: {name} does not match its SHA-256 in {MANIFEST} (corrupt or modified "
                "after export); re-export the router"
            )
    if not (path / CARD).is_file():
        raise ArtifactError(f"{path}: the model card {CARD} is missing")


def _load_scorer(path: Path, manifest: Manifest) -> Scorer:
    if manifest.kind in ("tfidf", "hybrid"):
        from router_training.tfidf import TfidfScorer

        return TfidfScorer.load(path)
    if manifest.kind == "ensemble":
        from router_training.ensemble import load_ensemble_scorer

        return load_ensemble_scorer(path, manifest)
    from router_training.encoder import load_encoder_scorer

    return load_encoder_scorer(path, manifest)


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


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
