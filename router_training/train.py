"""``train_router``: labelled queries in, a validated router artifact out.

Shared by every model kind: read and check the data, hold out a stratified validation split
when none is given (and say so), fit, fit the temperature on validation logits, choose the
abstain threshold for the configured target, compute validation metrics, write the artifact
atomically (a temporary sibling directory renamed into place) and load it back once.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from router_training.data import (
    LabelledData,
    check_known_labels,
    find_out_of_scope_label,
    read_labelled,
    stratified_split,
)
from router_training.metric_names import DEFAULT_GATE_TARGET

__all__ = ["TrainConfig", "TrainReport", "fit_linear", "train_router"]

log = logging.getLogger("router_training")


class TrainConfig(BaseModel):
    """Everything that decides a trained router besides the data."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["bert", "tfidf", "hybrid", "ensemble"] = Field(
        "bert",
        description="Model family: encoder, TF-IDF + LR, TF-IDF + static vectors + LR, or an "
        "encoder and a TF-IDF/hybrid model averaged in log-probability (ensemble).",
    )
    seed: int = Field(0, description="Seed for splits, initialisation and data order.")
    epochs: int | None = Field(None, ge=1, description="Max epochs (None: the kind's default).")
    base_model: Path | None = Field(
        None,
        description="Local HF encoder directory or 'minilm': fine-tuned (bert kind) or the "
        "source of the static token vectors (hybrid kind, default minilm).",
    )
    teacher: Path | None = Field(
        None, description="Router artifact whose probabilities to distil into the student."
    )
    keep_layers: int | None = Field(
        None, ge=1, description="Keep only the first N layers of the base encoder (faster)."
    )
    max_length: int = Field(64, ge=8, le=512, description="Tokens kept per query (bert kind).")
    batch_size: int = Field(32, ge=1, description="Training batch size (bert kind).")
    learning_rate: float | None = Field(None, gt=0, description="None: the kind's default.")
    runtime: Literal["auto", "torch", "onnx"] = Field(
        "auto", description="Encoder runtime in the artifact; auto: ONNX when onnxruntime exists."
    )
    onnx_optimization: Literal["none", "fused", "int8"] = Field(
        "none",
        description="ONNX graph for the encoder: as exported, ONNX Runtime's fused BERT "
        "operators, or fused + dynamic int8 quantization (the onnx runtime only).",
    )
    ensemble_member: Literal["tfidf", "hybrid"] = Field(
        "tfidf", description="The second member of an ensemble (beside the encoder)."
    )
    ensemble_weight: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Encoder weight in an ensemble (the other member gets 1 - w); None: "
        "chosen on the held-out split by log-likelihood.",
    )
    val_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="Stratified hold-out fraction when no validation file."
    )
    out_of_scope_label: str | None = Field(
        "auto", description="Label meaning 'no adapter'; 'auto' finds out_of_scope/oos; None."
    )
    abstain_target: str = Field(
        "auto", description="Threshold target, e.g. 'oos_recall>=0.8', 'fixed=0.5', 'none'."
    )
    ensemble_gate: str = Field(
        DEFAULT_GATE_TARGET,
        description="Gate of an ensemble (router_training.gate), chosen on the held-out split: "
        "'agreement>=0.995' (optionally ',abstain_agreement>=W'), 'encoder_fraction<=0.3', "
        "'fixed=0.9' or 'none' (the encoder scores every query).",
    )
    progress: bool = Field(True, description="Show progress bars.")
    threads: int = Field(
        1, ge=1, description="CPU threads for torch and ONNX Runtime (1 is fastest on a busy CPU)."
    )

    @field_validator("ensemble_gate")
    @classmethod
    def _gate_parses(cls, value: str) -> str:
        from router_training.gate import parse_gate_target

        parse_gate_target(value)  # raises ValueError with the accepted forms
        return value


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
    staging = _staging_dir(out)
    try:
        fitted = _fit(config, train, held, labels, staging)
        report = _finish(config, fitted, train, held, labels, oos_label, validation, staging, data)
        _replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    from router_training.artifact import load_router

    version = load_router(out).version
    seconds = time.perf_counter() - started
    log.info("router %s written to %s in %.1f s", version, out, seconds)
    return TrainReport(artifact=out, version=version, seconds=seconds, **report)


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
) -> dict[str, Any]:
    """Fit the model, save its files into ``staging``; return file names and val logits."""
    if config.kind in ("tfidf", "hybrid"):
        return fit_linear(config, config.kind, train, held, labels, staging)
    if config.kind == "ensemble":
        from router_training.ensemble import fit_ensemble

        return fit_ensemble(config, train, held, labels, staging)
    from router_training.bert import fit_encoder

    return fit_encoder(config, train, held, labels, staging)


def fit_linear(
    config: TrainConfig,
    kind: str,
    train: LabelledData,
    held: LabelledData,
    labels: list[str],
    staging: Path,
) -> dict[str, Any]:
    """Fit a TF-IDF (or hybrid) LR, save its files into ``staging``; files and val logits."""
    from router_training.tfidf import fit_tfidf

    y_train = np.array([labels.index(label) for label in train.labels])
    embedder = _static_embedder(config, train) if kind == "hybrid" else None
    scorer = fit_tfidf(
        train.texts, y_train, seed=config.seed, n_classes=len(labels), embedder=embedder
    )
    return {
        "files": scorer.save(staging),
        "val_logits": scorer.logits(held.texts),
        "runtime": "sklearn",
        "pooling": None,
        "params": {},
    }


def _static_embedder(config: TrainConfig, train: LabelledData) -> Any:
    from router_training.bert import resolve_base_model
    from router_training.static_embed import StaticEmbedder

    base = resolve_base_model(config.base_model or Path("minilm"))
    assert base is not None
    return StaticEmbedder.distil(base, train.texts, progress=config.progress)


def _finish(
    config: TrainConfig,
    fitted: dict[str, Any],
    train: LabelledData,
    held: LabelledData,
    labels: list[str],
    oos_label: str | None,
    validation: str,
    staging: Path,
    data: Path | str,
) -> dict[str, Any]:
    from router_training.artifact import write_manifest
    from router_training.calibration import softmax
    from router_training.card import write_card
    from router_training.evaluate import quality_metrics

    y_val = np.array([labels.index(label) for label in held.labels])
    oos_index = labels.index(oos_label) if oos_label is not None else None
    temperature, threshold, target = calibrate(
        fitted["val_logits"], y_val, oos_index, config.abstain_target
    )
    probs = softmax(np.asarray(fitted["val_logits"], np.float64), temperature)
    metrics = quality_metrics(probs, y_val, labels, oos_index, threshold)
    params = {
        **config.model_dump(mode="json", exclude={"progress", "threads"}),
        **fitted["params"],
        "data": str(data),
    }
    manifest = write_manifest(
        staging,
        file_names=fitted["files"],
        kind=config.kind,
        runtime=fitted["runtime"],
        labels=labels,
        boolean_labels=train.boolean_labels,
        out_of_scope_label=oos_label,
        temperature=temperature,
        abstain_threshold=threshold,
        abstain_target=target.spec(),
        max_length=config.max_length if config.kind in ("bert", "ensemble") else None,
        pooling=fitted["pooling"],
        data_sha256=train.sha256,
        val_sha256=held.sha256 if held.sha256 != train.sha256 else None,
        validation=validation,
        train_examples=len(train),
        metrics=metrics,
        params=params,
    )
    write_card(staging, manifest, train.label_counts)
    return {
        "kind": config.kind,
        "labels": labels,
        "validation": validation,
        "train_examples": len(train),
        "metrics": metrics,
    }


def calibrate(
    val_logits: np.ndarray, y_val: np.ndarray, oos_index: int | None, abstain_target: str
) -> tuple[float, float, Any]:
    """Temperature, abstain threshold and the parsed ``AbstainTarget`` of held-out logits."""
    from router_training.calibration import (
        choose_threshold,
        fit_temperature,
        parse_abstain_target,
        softmax,
    )

    temperature = fit_temperature(val_logits, y_val)
    probs = softmax(np.asarray(val_logits, np.float64), temperature)
    has_oos = oos_index is not None and bool((y_val == oos_index).any())
    target = parse_abstain_target(abstain_target, has_out_of_scope=has_oos)
    return temperature, choose_threshold(probs, y_val, oos_index, target), target


def _staging_dir(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").exists():
        raise FileExistsError(
            f"{out} is a non-empty directory that is not a router artifact; refusing to "
            "overwrite it. Choose an empty or new --out directory"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))


def _replace(staging: Path, out: Path) -> None:
    """Swap the finished artifact into place; the old one is removed only afterwards."""
    staging.chmod(0o755)  # mkdtemp makes it private
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{time.time_ns()}")
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
