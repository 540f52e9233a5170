"""``train_router``: labelled queries in, a validated router artifact out.

Shared by every model kind: read and check the data, hold out a stratified validation split
when none is given (and say so), fit (``linear``, ``bert`` or ``ensemble``; ``auto`` fits
several of them and keeps the best, see ``router_training.auto``), then finish
(``finish``): fit the temperature on validation logits, choose the abstain threshold for the
configured target, compute validation metrics, write the artifact atomically (a temporary
sibling directory renamed into place) and load it back once.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router_training.auto import (
    CandidateResult,
    choose,
    encoder_length,
    minilm_missing,
    plan_candidates,
    record_choice,
    run_candidates,
)
from router_training.bert import fit_encoder
from router_training.calibration import calibrate
from router_training.card import candidate_table
from router_training.config import FitResult, TrainConfig
from router_training.data import (
    LabelledData,
    check_known_labels,
    find_out_of_scope_label,
    read_labelled,
    stratified_split,
)
from router_training.ensemble import fit_ensemble
from router_training.finish import (
    TrainReport,
    check_out,
    finish_artifact,
    replace_artifact,
    staged_artifact,
    staging_dir,
    train_report,
)
from router_training.linear import fit_linear
from router_training.manifest import Manifest

__all__ = ["TrainConfig", "TrainReport", "calibrate", "fit_linear", "train_router"]

log = logging.getLogger("router_training")


def train_router(
    data: Path | str,
    out: Path | str,
    *,
    val: Path | str | None = None,
    kind: str = "auto",
    seed: int = 0,
    epochs: float | None = None,
    text_field: str = "text",
    label_field: str = "label",
    progress: bool = True,
    **options: Any,
) -> TrainReport:
    """Train a router on ``data`` and write the artifact to ``out`` (replacing an old artifact).

    ``options`` are further ``TrainConfig`` fields (base_model, max_length, abstain_target, ...).
    With ``kind="auto"`` the options given here are kept for every candidate; the ensemble
    candidate's own defaults (``auto.ENSEMBLE_DEFAULTS``) fill only the ones not given.
    """
    config = TrainConfig(kind=kind, seed=seed, epochs=epochs, progress=progress, **options)  # type: ignore[arg-type]
    started = time.perf_counter()
    train, held, validation = _load_data(Path(data), val, text_field, label_field, config)
    labels = sorted(set(train.labels))
    check_known_labels(held, labels, "the training data")
    oos_label = find_out_of_scope_label(labels, config.out_of_scope_label)
    out = Path(out)
    if config.kind == "auto":
        explicit = frozenset(options) | ({"epochs"} if epochs is not None else frozenset())
        inputs = _Inputs(train, held, labels, oos_label, validation, data)
        return train_auto(config, inputs, out, explicit, started)
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


@dataclass(frozen=True, slots=True)
class _Inputs:
    """The data every candidate of an auto run is trained and calibrated on."""

    train: LabelledData
    held: LabelledData
    labels: list[str]
    oos_label: str | None
    validation: str
    data: Path | str

    def fit_and_finish(self, config: TrainConfig, staging: Path) -> tuple[FitResult, Manifest]:
        fitted = _fit(config, self.train, self.held, self.labels, staging)
        manifest = finish_artifact(
            staging,
            config,
            fitted,
            train=self.train,
            held=self.held,
            labels=self.labels,
            oos_label=self.oos_label,
            validation=self.validation,
            data=self.data,
        )
        return fitted, manifest


def train_auto(
    config: TrainConfig, inputs: _Inputs, out: Path, explicit: frozenset[str], started: float
) -> TrainReport:
    """Train the candidates, move the best into ``out`` with the comparison in its manifest
    and model card; every other candidate's files are removed."""
    length = encoder_length(inputs.train.texts)
    plans = plan_candidates(config, len(inputs.train), explicit, minilm_missing, length)
    check_out(out)  # fail on a bad --out before any training
    results: list[CandidateResult] = []
    try:
        results = run_candidates(
            plans, config.time_budget_s, inputs.fit_and_finish, lambda: staging_dir(out)
        )
        best, why = choose(results)
        records = [result.record() for result in results]
        for line in candidate_table(records, best.name):
            log.info("%s", line)
        log.info("auto: chose %s: %s", best.name, why)
        assert best.staging is not None
        manifest = record_choice(best.staging, records, best.name, why, inputs.train)
        replace_artifact(best.staging, out)
    finally:
        for result in results:
            if result.staging is not None:
                shutil.rmtree(result.staging, ignore_errors=True)
    report = train_report(out, manifest, started)
    report.candidates, report.choice = records, why
    return report


def _load_data(
    data: Path, val: Path | str | None, text_field: str, label_field: str, config: TrainConfig
) -> tuple[LabelledData, LabelledData, str]:
    train = read_labelled(
        data, text_field=text_field, label_field=label_field, fine_field=config.fine_label_field
    )
    if train.fine_labels is not None:
        log.info(
            "finer labels: field %r (%d classes within %d labels) for encoder training",
            train.fine_field,
            len(set(train.fine_labels)),
            len(set(train.labels)),
        )
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
