"""``train_router``: labelled queries in, a validated router artifact out.

Shared by every model kind: read and check the data, hold out a stratified validation split
when none is given (and say so), fit (``linear``, ``bert`` or ``ensemble``), then finish
(``finish``): fit the temperature on validation logits, choose the abstain threshold for the
configured target, compute validation metrics, write the artifact atomically (a temporary
sibling directory renamed into place) and load it back once.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from router_training.bert import fit_encoder
from router_training.calibration import calibrate
from router_training.config import FitResult, TrainConfig
from router_training.data import (
    LabelledData,
    check_known_labels,
    find_out_of_scope_label,
    read_labelled,
    stratified_split,
)
from router_training.ensemble import fit_ensemble
from router_training.finish import TrainReport, finish_artifact, staged_artifact, train_report
from router_training.linear import fit_linear

__all__ = ["TrainConfig", "TrainReport", "calibrate", "fit_linear", "train_router"]

log = logging.getLogger("router_training")


def train_router(
    data: Path | str,
    out: Path | str,
    *,
    val: Path | str | None = None,
    kind: str = "bert",
    seed: int = 0,
    epochs: int | None = None,
    text_field: str = "text",
    label_field: str = "label",
    progress: bool = True,
    **options: Any,
) -> TrainReport:
    """Train a router on ``data`` and write the artifact to ``out`` (replacing an old artifact).

    ``options`` are further ``TrainConfig`` fields (base_model, max_length, abstain_target, ...).
    """
    config = TrainConfig(kind=kind, seed=seed, epochs=epochs, progress=progress, **options)  # type: ignore[arg-type]
    started = time.perf_counter()
    train, held, validation = _load_data(Path(data), val, text_field, label_field, config)
    labels = sorted(set(train.labels))
    check_known_labels(held, labels, "the training data")
    oos_label = find_out_of_scope_label(labels, config.out_of_scope_label)
    out = Path(out)
    with staged_artifact(out) as staging:
        fitted = _fit(config, train, held, labels, staging)
        manifest = finish_artifact(
            staging,
            config,
            fitted,
            train=train,
            held=held,
            labels=labels,
            oos_label=oos_label,
            validation=validation,
            data=data,
        )
    report = train_report(out, manifest, started)
    log.info("router %s written to %s in %.1f s", report.version, out, report.seconds)
    return report


def _load_data(
    data: Path, val: Path | str | None, text_field: str, label_field: str, config: TrainConfig
) -> tuple[LabelledData, LabelledData, str]:
    train = read_labelled(data, text_field=text_field, label_field=label_field)
    if val is not None:
        held = read_labelled(val, text_field=text_field, label_field=label_field, min_labels=1)
        return train, held, f"file {val} ({len(held)} rows)"
    train, held = stratified_split(train, config.val_fraction, config.seed)
    message = (
        f"no validation file given: holding out a stratified {config.val_fraction:.0%} of "
        f"{data} ({len(held)} rows, seed {config.seed}) for early stopping, temperature and "
        "the abstain threshold"
    )
    log.warning(message)
    return train, held, message


def _fit(
    config: TrainConfig,
    train: LabelledData,
    held: LabelledData,
    labels: list[str],
    staging: Path,
) -> FitResult:
    """Fit the model of ``config.kind`` and save its files into ``staging``."""
    if config.kind in ("tfidf", "hybrid"):
        return fit_linear(config, config.kind, train, held, labels, staging)
    if config.kind == "ensemble":
        return fit_ensemble(config, train, held, labels, staging)
    return fit_encoder(config, train, held, labels, staging)
