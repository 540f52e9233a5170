"""The finishing step shared by ``train`` and ``compose``: from a fitted model in a staging
directory to a complete artifact swapped into place.

``staged_artifact(out)`` gives a fresh staging directory beside ``out`` and, when the block
succeeds, replaces ``out`` with it (the old artifact is removed only afterwards); it is
deleted in every case. Inside, a fit saves its model files and ``finish_artifact`` fits the
temperature and abstain threshold on the held-out logits, computes validation metrics and
writes the manifest and the model card. ``train_report`` loads the result back once.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from router_training.artifact import load_router
from router_training.calibration import calibrate, softmax
from router_training.card import write_card
from router_training.config import FitResult, TrainConfig
from router_training.data import LabelledData
from router_training.evaluate import quality_metrics
from router_training.manifest import MANIFEST, Manifest, write_manifest

__all__ = [
    "TrainReport",
    "check_out",
    "finish_artifact",
    "replace_artifact",
    "staged_artifact",
    "staging_dir",
    "train_report",
]


class TrainReport(BaseModel):
    """What ``train_router`` produced."""

    model_config = ConfigDict(extra="forbid")

    artifact: Path = Field(description="The artifact directory.")
    version: str = Field(description="The artifact's content version.")
    kind: str = Field(description="Model family.")
    labels: list[str] = Field(description="Output labels.")
    validation: str = Field(description="Where validation data came from.")
    train_examples: int = Field(description="Rows trained on.")
    metrics: dict[str, Any] = Field(description="Validation metrics.")
    seconds: float = Field(description="Wall time of training and export.")
    candidates: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Kind auto: every candidate's validation scores (or why it was skipped).",
    )
    choice: str | None = Field(None, description="Kind auto: which candidate won, and why.")


def staging_dir(out: Path) -> Path:
    """A new private temporary directory beside ``out`` to build the artifact in
    (``check_out`` first)."""
    check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))


def check_out(out: Path) -> None:
    """Refuse (``FileExistsError``) an ``out`` that is a file, or a non-empty directory that is
    not a router artifact (no ``manifest.json``), so a wrong ``--out`` never deletes user files.
    """
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise FileExistsError(
            f"{out} is a non-empty directory that is not a router artifact; refusing to "
            "overwrite it. Choose an empty or new --out directory"
        )


def replace_artifact(staging: Path, out: Path) -> None:
    """Swap the finished artifact into place; the old one is removed only afterwards."""
    staging.chmod(0o755)  # mkdtemp makes it private
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{time.time_ns()}")
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_artifact(out: Path) -> Iterator[Path]:
    """Yield a staging directory (``staging_dir``); on success it replaces ``out``
    (``replace_artifact``). The staging directory is removed whatever happens."""
    staging = staging_dir(out)
    try:
        yield staging
        replace_artifact(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def finish_artifact(
    staging: Path,
    config: TrainConfig,
    fitted: FitResult,
    *,
    train: LabelledData,
    held: LabelledData,
    labels: list[str],
    oos_label: str | None,
    validation: str,
    data: Path | str,
) -> Manifest:
    """Calibrate ``fitted`` on the held-out rows, write the manifest and the model card into
    ``staging`` (which already holds ``fitted.files``); return the manifest.

    The temperature and the abstain threshold (for ``config.abstain_target``) are fitted on
    ``fitted.val_logits``; the manifest's metrics are the held-out quality metrics at them.
    """
    y_val = np.array([labels.index(label) for label in held.labels])
    oos_index = labels.index(oos_label) if oos_label is not None else None
    temperature, threshold, target = calibrate(
        fitted.val_logits, y_val, oos_index, fitted.abstain_target or config.abstain_target
    )
    probs = softmax(np.asarray(fitted.val_logits, np.float64), temperature)
    metrics = quality_metrics(probs, y_val, labels, oos_index, threshold)
    params = {
        **config.model_dump(mode="json", exclude={"progress", "threads"}),
        **fitted.params,
        "data": str(data),
    }
    manifest = write_manifest(
        staging,
        file_names=fitted.files,
        kind=config.kind,
        runtime=fitted.runtime,
        labels=labels,
        boolean_labels=train.boolean_labels,
        out_of_scope_label=oos_label,
        temperature=temperature,
        abstain_threshold=threshold,
        abstain_target=target.spec(),
        max_length=config.max_length if config.kind in ("bert", "ensemble") else None,
        pooling=fitted.pooling,
        data_sha256=train.sha256,
        val_sha256=held.sha256 if held.sha256 != train.sha256 else None,
        validation=validation,
        train_examples=len(train),
        metrics=metrics,
        params=params,
    )
    write_card(staging, manifest, train.label_counts)
    return manifest


def train_report(out: Path, manifest: Manifest, started: float) -> TrainReport:
    """Load the artifact at ``out`` back once (a full validation) and describe it; ``started``
    is the ``time.perf_counter()`` of the start of training."""
    version = load_router(out).version
    return TrainReport(
        artifact=out,
        version=version,
        kind=manifest.kind,
        labels=manifest.labels,
        validation=manifest.validation,
        train_examples=manifest.train_examples,
        metrics=manifest.metrics,
        seconds=time.perf_counter() - started,
    )
