"""``manifest.json``, the contract of a router artifact directory, and its errors.

The lowest layer of the artifact format: the ``Manifest`` model, reading and writing it, and
``ArtifactError``. It imports nothing else from ``router_training``, so every model kind
(``encoder``, ``tfidf``, ``ensemble``), the model card and the loader (``artifact``) depend on
it and never the other way round.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "CARD",
    "FORMAT_VERSION",
    "MANIFEST",
    "ArtifactError",
    "Manifest",
    "file_sha256",
    "read_manifest",
    "write_manifest",
]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CARD = "README.md"


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


def write_manifest(directory: Path, **fields: Any) -> Manifest:
    """Hash the model files already in ``directory`` and write ``manifest.json``."""
    names = fields.pop("file_names")
    files = {name: file_sha256(directory / name) for name in sorted(names)}
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        files=files,
        **fields,
    )
    (directory / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


def read_manifest(path: Path) -> Manifest:
    """The validated manifest of the artifact directory ``path``; ``ArtifactError`` if unusable."""
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


def file_sha256(file: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
