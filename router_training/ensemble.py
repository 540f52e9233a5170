"""The ensemble kind: a fine-tuned encoder and a TF-IDF (or hybrid) model in one artifact.

Scores are the weighted sum of the members' log-probabilities, each member first calibrated
with its own temperature: ``w * log p_encoder + (1 - w) * log p_linear``. The member
temperatures and the weight ``w`` are fitted on the same held-out split the trainer uses for
the ensemble's temperature and abstain threshold (unless ``ensemble_weight`` fixes ``w``).
Files: the encoder's (``config.json``, ``model.safetensors``, ``model.onnx``, ...), the TF-IDF
model's (``tfidf.json``, ``tfidf.npz``, + static vectors for a hybrid member) and
``ensemble.json`` (``EnsembleSpec``).

With a gate (``EnsembleSpec.gate_threshold``, see ``router_training.gate``) the member scores
every query first; a query whose calibrated member top probability reaches the gate is
answered by the member alone, and only the others are scored by the encoder and fused. A
gated row's logits are ``T * log p_member`` (``T``: the artifact's temperature), so the
router's calibrated probabilities for it are exactly the member's, and the usual abstain
rules (out-of-scope label, abstain threshold) apply to them unchanged. ``ensemble.json``
files written before the gate existed load with the gate off.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from router_training.bert import fit_encoder
from router_training.calibration import calibrate, fit_temperature, softmax
from router_training.config import FitResult, TrainConfig
from router_training.data import LabelledData, find_out_of_scope_label
from router_training.encoder import load_encoder_scorer
from router_training.gate import ABSTAIN, choose_gate, decisions, gate_stats, parse_gate_target
from router_training.kinds import Scorer
from router_training.linear import fit_linear
from router_training.manifest import Manifest
from router_training.tfidf import TfidfScorer

__all__ = [
    "ENSEMBLE_FILE",
    "EnsembleScorer",
    "EnsembleSpec",
    "choose_weight",
    "combine",
    "fit_ensemble",
    "fit_gate",
    "load_ensemble_scorer",
]

ENSEMBLE_FILE = "ensemble.json"
_WEIGHT_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)


class EnsembleSpec(BaseModel):
    """``ensemble.json``: how the two members' scores are combined."""

    model_config = ConfigDict(extra="forbid")

    member: str = Field(description="Kind of the second member: tfidf or hybrid.")
    encoder_weight: float = Field(ge=0.0, le=1.0, description="w; the member gets 1 - w.")
    encoder_temperature: float = Field(gt=0, description="Encoder logits are divided by this.")
    member_temperature: float = Field(gt=0, description="Member logits are divided by this.")
    gate_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Answer from the member alone when its calibrated top probability is at "
        "least this; None: no gate, the encoder scores every query.",
    )
    gate_target: str = Field("none", description="What the gate threshold was chosen for.")


def log_softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    scaled = np.asarray(logits, np.float64) / temperature
    scaled = scaled - scaled.max(axis=-1, keepdims=True)
    return scaled - np.log(np.exp(scaled).sum(axis=-1, keepdims=True))  # type: ignore[no-any-return]


def combine(encoder: np.ndarray, member: np.ndarray, spec: EnsembleSpec) -> np.ndarray:
    """The ensemble's logits (weighted log-probabilities) from the members' raw logits."""
    weight = spec.encoder_weight
    return weight * log_softmax(encoder, spec.encoder_temperature) + (1 - weight) * log_softmax(
        member, spec.member_temperature
    )


def choose_weight(
    encoder: np.ndarray, member: np.ndarray, targets: np.ndarray, member_kind: str
) -> EnsembleSpec:
    """Member temperatures, then the encoder weight with the lowest held-out NLL (ties: the
    larger weight, i.e. the first minimum from the encoder's side)."""
    spec = EnsembleSpec(
        member=member_kind,
        encoder_weight=1.0,
        encoder_temperature=fit_temperature(encoder, targets),
        member_temperature=fit_temperature(member, targets),
    )
    losses = []
    for weight in _WEIGHT_GRID[::-1]:
        trial = spec.model_copy(update={"encoder_weight": float(weight)})
        scores = combine(encoder, member, trial)
        losses.append(-log_softmax(scores, 1.0)[np.arange(len(targets)), targets].mean())
    best = float(_WEIGHT_GRID[::-1][int(np.argmin(losses))])
    return spec.model_copy(update={"encoder_weight": best})


def fit_ensemble(
    config: TrainConfig,
    train: LabelledData,
    held: LabelledData,
    labels: list[str],
    staging: Path,
) -> FitResult:
    """Fit both members into ``staging``, weigh them on the held-out split."""
    encoder = fit_encoder(config, train, held, labels, staging)
    member = fit_linear(config, config.ensemble_member, train, held, labels, staging)
    targets = np.array([labels.index(label) for label in held.labels])
    spec = choose_weight(encoder.val_logits, member.val_logits, targets, config.ensemble_member)
    if config.ensemble_weight is not None:
        spec = spec.model_copy(update={"encoder_weight": config.ensemble_weight})
    oos_label = find_out_of_scope_label(labels, config.out_of_scope_label)
    spec, gate = fit_gate(
        spec,
        encoder.val_logits,
        member.val_logits,
        targets,
        labels.index(oos_label) if oos_label is not None else None,
        abstain_target=config.abstain_target,
        gate_target=config.ensemble_gate,
    )
    (staging / ENSEMBLE_FILE).write_text(spec.model_dump_json(indent=2) + "\n")
    return FitResult(
        files=(*encoder.files, *member.files, ENSEMBLE_FILE),
        val_logits=combine(encoder.val_logits, member.val_logits, spec),
        runtime=encoder.runtime,
        pooling=encoder.pooling,
        params={**encoder.params, "ensemble": spec.model_dump(), "gate": gate},
    )


def fit_gate(
    spec: EnsembleSpec,
    encoder: np.ndarray,
    member: np.ndarray,
    targets: np.ndarray,
    oos_index: int | None,
    *,
    abstain_target: str,
    gate_target: str,
) -> tuple[EnsembleSpec, dict[str, Any]]:
    """Choose the gate on held-out logits; return the gated spec and the held-out statistics.

    The full ensemble's temperature and abstain threshold are fitted exactly as the trainer
    fits them for the artifact (the gate does not change them), then each held-out row's
    decision when answered by the member alone is compared with the full ensemble's.
    """
    target = parse_gate_target(gate_target)
    if target.metric == "none":
        return spec.model_copy(update={"gate_threshold": None, "gate_target": "none"}), {}
    fused = combine(encoder, member, spec)
    temperature, threshold, _ = calibrate(fused, targets, oos_index, abstain_target)
    full = decisions(softmax(fused, temperature), threshold, oos_index)
    member_log_probs = log_softmax(member, spec.member_temperature)
    alone = decisions(np.exp(member_log_probs), threshold, oos_index)
    confidence = np.exp(member_log_probs.max(axis=1))
    agrees, abstains = alone == full, full == ABSTAIN
    gate = choose_gate(confidence, agrees, abstains, target)
    stats = {
        "threshold": gate,
        "target": target.spec(),
        **gate_stats(confidence, agrees, abstains, gate),
    }
    return spec.model_copy(update={"gate_threshold": gate, "gate_target": target.spec()}), stats


class EnsembleScorer:
    """Logits of an ensemble artifact.

    Without a gate both members score every batch. With one, the member scores the batch and
    only the rows below the gate go to the encoder (as one smaller batch). ``temperature`` is
    the artifact's (manifest) temperature, used for the gated rows' logits. ``texts_scored``
    and ``encoder_texts`` count queries since loading (the encoder fraction is their ratio).
    """

    def __init__(
        self, encoder: Scorer, member: Scorer, spec: EnsembleSpec, *, temperature: float
    ) -> None:
        if encoder.n_outputs != member.n_outputs:
            raise ValueError(
                f"ensemble members disagree on the label count ({encoder.n_outputs} vs "
                f"{member.n_outputs})"
            )
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self._encoder = encoder
        self._member = member
        self.spec = spec
        self.temperature = temperature
        self.texts_scored = 0
        self.encoder_texts = 0

    @property
    def n_outputs(self) -> int:
        return self._encoder.n_outputs

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        member = np.asarray(self._member.logits(texts), np.float64)
        self.texts_scored += len(texts)
        gate = self.spec.gate_threshold
        if gate is None:
            self.encoder_texts += len(texts)
            return combine(self._encoder.logits(texts), member, self.spec)
        member_log_probs = log_softmax(member, self.spec.member_temperature)
        scores = self.temperature * member_log_probs
        rows = np.flatnonzero(np.exp(member_log_probs.max(axis=1)) < gate)
        if rows.size:
            encoder = self._encoder.logits([texts[i] for i in rows])
            scores[rows] = combine(encoder, member[rows], self.spec)
            self.encoder_texts += int(rows.size)
        return scores


def load_ensemble_scorer(directory: Path, manifest: Manifest) -> EnsembleScorer:
    """The scorer of an "ensemble" artifact (the kind registry's loader)."""
    spec = EnsembleSpec.model_validate_json((directory / ENSEMBLE_FILE).read_text())
    return EnsembleScorer(
        load_encoder_scorer(directory, manifest),
        TfidfScorer.load(directory),
        spec,
        temperature=manifest.temperature,
    )
