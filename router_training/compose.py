"""Build an ensemble artifact from two routers already trained on the same data and split.

``spillway router ensemble --encoder DIR --member DIR --data FILE --out DIR``: an encoder
("bert") artifact and a TF-IDF or hybrid artifact, both trained on ``FILE`` with the trainer's
own stratified hold-out (same seed and fraction, no ``--val`` file). The hold-out is rebuilt
from ``FILE``; the member temperatures, the encoder weight, the ensemble temperature and the
abstain threshold are all fitted on it, exactly as ``train --kind ensemble`` does, so no
retraining is needed to try an ensemble (or another ONNX optimization of the encoder, or a
gate: ``--gate``, see ``router_training.gate``).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from router_training.artifact import LoadedRouter, load_router
from router_training.config import FitResult, TrainConfig
from router_training.data import LabelledData, read_labelled, stratified_split
from router_training.encoder import (
    ENCODER_FILES,
    EncoderScorer,
    export_optimized_onnx,
    load_torch_classifier,
    onnx_runner,
)
from router_training.ensemble import ENSEMBLE_FILE, choose_weight, combine, fit_gate
from router_training.finish import TrainReport, finish_artifact, staged_artifact, train_report
from router_training.kinds import Scorer
from router_training.metric_names import DEFAULT_GATE_TARGET
from router_training.tfidf import TfidfScorer

__all__ = ["compose_ensemble"]


def compose_ensemble(
    encoder: Path,
    member: Path,
    data: Path,
    out: Path,
    *,
    onnx_optimization: str = "int8",
    abstain_target: str = "auto",
    ensemble_weight: float | None = None,
    gate: str = DEFAULT_GATE_TARGET,
    text_field: str = "text",
    label_field: str = "label",
) -> TrainReport:
    """Write the ensemble of ``encoder`` and ``member`` to ``out``; return a ``TrainReport``."""
    started = time.perf_counter()
    routers = load_router(encoder), load_router(member)
    full = read_labelled(data, text_field=text_field, label_field=label_field)
    seed, fraction = _check_pair(*routers, full)
    train, held = stratified_split(full, fraction, seed)
    first = routers[0].manifest
    config = TrainConfig(
        kind="ensemble",
        seed=seed,
        val_fraction=fraction,
        max_length=first.max_length or 64,
        runtime="onnx",
        onnx_optimization=onnx_optimization,  # type: ignore[arg-type]
        ensemble_member=routers[1].manifest.kind,  # type: ignore[arg-type]
        ensemble_weight=ensemble_weight,
        out_of_scope_label=first.out_of_scope_label or None,
        abstain_target=abstain_target,
        ensemble_gate=gate,
        progress=False,
    )
    labels = list(first.labels)
    validation = f"hold-out rebuilt from {data}: stratified {fraction:.0%}, seed {seed}"
    with staged_artifact(Path(out)) as staging:
        fitted = _fit(config, routers, held, labels, staging)
        manifest = finish_artifact(
            staging,
            config,
            fitted,
            train=train,
            held=held,
            labels=labels,
            oos_label=first.out_of_scope_label,
            validation=validation,
            data=data,
        )
    return train_report(Path(out), manifest, started)


def _check_pair(
    encoder: LoadedRouter, member: LoadedRouter, full: LabelledData
) -> tuple[int, float]:
    """Both trained on ``full`` with the same internal hold-out; return (seed, fraction)."""
    kinds = encoder.manifest.kind, member.manifest.kind
    if kinds[0] != "bert" or kinds[1] not in ("tfidf", "hybrid"):
        raise ValueError(f"need a bert --encoder and a tfidf/hybrid --member, got {kinds}")
    if encoder.labels != member.labels:
        raise ValueError(
            f"the two routers have different labels: {encoder.labels} vs {member.labels}"
        )
    splits = set()
    for router in (encoder, member):
        manifest = router.manifest
        if manifest.data_sha256 != full.sha256:
            raise ValueError(f"{router.path} was not trained on this --data file (SHA-256 differs)")
        if manifest.val_sha256 is not None:
            raise ValueError(
                f"{router.path} was validated on a --val file; compose needs the hold-out"
            )
        splits.add((int(manifest.params["seed"]), float(manifest.params["val_fraction"])))
    if len(splits) != 1:
        raise ValueError(f"the two routers held out different splits (seed, fraction): {splits}")
    return splits.pop()


def _fit(
    config: TrainConfig,
    routers: tuple[LoadedRouter, LoadedRouter],
    held: LabelledData,
    labels: list[str],
    staging: Path,
) -> FitResult:
    """Copy both members' files into ``staging``, export the encoder's ONNX graph and weigh
    (and gate) the two on the held-out rows."""
    encoder, member = routers
    for name in ENCODER_FILES:
        shutil.copy2(encoder.path / name, staging / name)
    member_files = list(member.manifest.files)
    for name in member_files:
        shutil.copy2(member.path / name, staging / name)
    pooling = encoder.manifest.pooling or "mean"
    model = load_torch_classifier(staging, len(labels), pooling)
    fused = export_optimized_onnx(model, staging / "model.onnx", config.onnx_optimization)
    tokenizer = encoder._scorer._tokenizer  # type: ignore[attr-defined]
    scorer = EncoderScorer(tokenizer, onnx_runner(staging / "model.onnx", 1), len(labels), "onnx")
    encoder_logits = _logits(scorer, held.texts)
    member_logits = _logits(TfidfScorer.load(staging), held.texts)
    targets = np.array([labels.index(label) for label in held.labels])
    spec = choose_weight(encoder_logits, member_logits, targets, member.manifest.kind)
    if config.ensemble_weight is not None:
        spec = spec.model_copy(update={"encoder_weight": config.ensemble_weight})
    oos = config.out_of_scope_label
    spec, gate = fit_gate(
        spec,
        encoder_logits,
        member_logits,
        targets,
        labels.index(oos) if oos is not None else None,
        abstain_target=config.abstain_target,
        gate_target=config.ensemble_gate,
    )
    (staging / ENSEMBLE_FILE).write_text(spec.model_dump_json(indent=2) + "\n")
    params = {
        "composed_from": {"encoder": str(encoder.path), "member": str(member.path)},
        "encoder_params": encoder.manifest.params,
        "onnx_optimization": config.onnx_optimization,
        "onnx_fused_operators": fused,
        "ensemble": spec.model_dump(),
        "gate": gate,
    }
    return FitResult(
        files=(*ENCODER_FILES, "model.onnx", *member_files, ENSEMBLE_FILE),
        val_logits=combine(encoder_logits, member_logits, spec),
        runtime="onnx",
        pooling=pooling,
        params=params,
    )


def _logits(scorer: Scorer, texts: Sequence[str]) -> np.ndarray:
    return np.concatenate([scorer.logits(texts[i : i + 256]) for i in range(0, len(texts), 256)])
