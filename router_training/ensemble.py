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
from router_training.distance import DISTANCE_FILE, DistanceDetector
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
    oos_index = labels.index(oos_label) if oos_label is not None else None
    fused = combine(encoder.val_logits, member.val_logits, spec)
    fitted = _fit_detector(config, encoder, train, held, labels, oos_index, fused)
    flagged = fitted[1] if fitted is not None else None
    # with a detector its rule replaces the probability threshold (it includes p_top)
    abstain_target = "none" if fitted is not None else config.abstain_target
    spec, gate = fit_gate(
        spec,
        encoder.val_logits,
        member.val_logits,
        targets,
        oos_index,
        abstain_target=abstain_target,
        gate_target=config.ensemble_gate,
        flagged=flagged,
    )
    (staging / ENSEMBLE_FILE).write_text(spec.model_dump_json(indent=2) + "\n")
    files = (*encoder.files, *member.files, ENSEMBLE_FILE)
    params = {**encoder.params, "ensemble": spec.model_dump(), "gate": gate}
    if fitted is not None and oos_index is not None:
        detector, flagged = fitted
        files = (*files, detector.save(staging))
        fused = flag_out_of_scope(fused, flagged, oos_index)
        params["oos_distance"] = {
            "centre": detector.centre.tolist(),
            "spread": detector.spread.tolist(),
            "threshold": detector.threshold,
            "flag_rate": config.oos_distance_rate,
            "holdout_flagged": float(flagged.mean()),
        }
    return FitResult(
        files=files,
        val_logits=fused,
        runtime=encoder.runtime,
        pooling=encoder.pooling,
        params=params,
        abstain_target=abstain_target,
    )


#: Training rows per label (per finer class, when the data has them) the distance detector's
#: means and covariance are fitted on.
_DETECTOR_ROWS_PER_LABEL = 400


def _fit_detector(
    config: TrainConfig,
    encoder: FitResult,
    train: LabelledData,
    held: LabelledData,
    labels: list[str],
    oos_index: int | None,
    fused: np.ndarray,
) -> tuple[DistanceDetector, np.ndarray] | None:
    """The distance detector (``router_training.distance``), fitted on a per-label sample of
    the training rows and calibrated on the held-out in-scope rows (``fused``: the
    ensemble's held-out scores), and its held-out flags; None when off, without an
    out-of-scope label, or when the encoder graph has no pooled output."""
    if config.oos_distance_rate is None or oos_index is None or encoder.embed is None:
        return None
    rng = np.random.default_rng(config.seed)
    # one mean per finer class when the data has them (router_training.fine_labels)
    classes = train.fine_labels or train.labels
    oos_label = labels[oos_index]
    by_label: dict[str, list[int]] = {}
    for index, label in enumerate(classes):
        if train.labels[index] != oos_label:
            by_label.setdefault(label, []).append(index)
    sample = sorted(
        i
        for rows in by_label.values()
        for i in rng.permutation(rows)[:_DETECTOR_ROWS_PER_LABEL].tolist()
    )
    pooled = encoder.embed([train.texts[i] for i in sample])
    held_pooled = encoder.embed(held.texts)
    if pooled is None or held_pooled is None:
        return None
    names = sorted(by_label)
    targets = np.array([names.index(classes[i]) for i in sample])
    detector = DistanceDetector.fit(pooled, targets, None)
    in_scope = np.array([labels.index(label) != oos_index for label in held.labels])
    evidence = ensemble_evidence(fused, oos_index)
    detector.calibrate(held_pooled, evidence, in_scope, config.oos_distance_rate)
    return detector, detector.flags(held_pooled, evidence)


def ensemble_evidence(fused: np.ndarray, oos_index: int) -> np.ndarray:
    """The ensemble's in-scope evidence for the distance detector, per row: its top
    log-probability, and its best in-scope label's log-probability minus the out-of-scope
    label's."""
    log_probs = log_softmax(fused, 1.0)
    in_scope = np.delete(log_probs, oos_index, axis=1).max(axis=1)
    return np.column_stack([log_probs.max(axis=1), in_scope - log_probs[:, oos_index]])


#: How far above the best label a flagged row's out-of-scope logit is set (log-probability).
FLAG_MARGIN = 2.0


def flag_out_of_scope(logits: np.ndarray, flagged: np.ndarray, oos_index: int) -> np.ndarray:
    """``logits`` with the out-of-scope label made the top label, by ``FLAG_MARGIN``, on the
    flagged rows: the router then abstains on them as on any out-of-scope prediction."""
    out = np.array(logits, dtype=np.float64, copy=True)
    if flagged.any():
        out[flagged, oos_index] = out[flagged].max(axis=1) + FLAG_MARGIN
    return out


def fit_gate(
    spec: EnsembleSpec,
    encoder: np.ndarray,
    member: np.ndarray,
    targets: np.ndarray,
    oos_index: int | None,
    *,
    abstain_target: str,
    gate_target: str,
    flagged: np.ndarray | None = None,
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
    if flagged is not None and oos_index is not None:
        fused = flag_out_of_scope(fused, flagged, oos_index)
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
        self,
        encoder: Scorer,
        member: Scorer,
        spec: EnsembleSpec,
        *,
        temperature: float,
        detector: tuple[DistanceDetector, int] | None = None,
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
        self._detector = detector

    @property
    def n_outputs(self) -> int:
        return self._encoder.n_outputs

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        member = np.asarray(self._member.logits(texts), np.float64)
        self.texts_scored += len(texts)
        gate = self.spec.gate_threshold
        if gate is None:
            self.encoder_texts += len(texts)
            return self._fused(texts, member)
        scores, rows = self._gated(member, gate)
        if rows.size:
            scores[rows] = self._fused([texts[i] for i in rows], member[rows])
            self.encoder_texts += int(rows.size)
        return scores

    def quick_logits(self, texts: Sequence[str]) -> np.ndarray | None:
        """`logits` when the gate answers every text (the member alone: no encoder), else None
        (``kinds.QuickScorer``)."""
        gate = self.spec.gate_threshold
        if gate is None:
            return None
        scores, rows = self._gated(np.asarray(self._member.logits(texts), np.float64), gate)
        if rows.size:
            return None
        self.texts_scored += len(texts)
        return scores

    def _gated(self, member: np.ndarray, gate: float) -> tuple[np.ndarray, np.ndarray]:
        """The gated rows' final scores (the member's calibrated log-probabilities at the
        artifact's temperature) and the indices of the rows below the gate."""
        member_log_probs = log_softmax(member, self.spec.member_temperature)
        scores = self.temperature * member_log_probs
        return scores, np.flatnonzero(np.exp(member_log_probs.max(axis=1)) < gate)

    def _fused(self, texts: Sequence[str], member: np.ndarray) -> np.ndarray:
        """The encoder's and the member's scores combined, with distance-flagged rows made
        out of scope (when the artifact has a distance detector)."""
        if self._detector is None:
            return combine(self._encoder.logits(texts), member, self.spec)
        detector, oos_index = self._detector
        logits, pooled = self._encoder.logits_and_pooled(texts)  # type: ignore[attr-defined]
        fused = combine(logits, member, self.spec)
        if pooled is None:
            return fused
        flags = detector.flags(pooled, ensemble_evidence(fused, oos_index))
        return flag_out_of_scope(fused, flags, oos_index)


def load_ensemble_scorer(directory: Path, manifest: Manifest) -> EnsembleScorer:
    """The scorer of an "ensemble" artifact (the kind registry's loader)."""
    spec = EnsembleSpec.model_validate_json((directory / ENSEMBLE_FILE).read_text())
    detector = None
    if DISTANCE_FILE in manifest.files and manifest.out_of_scope_label is not None:
        oos_index = manifest.labels.index(manifest.out_of_scope_label)
        detector = (DistanceDetector.load(directory), oos_index)
    return EnsembleScorer(
        load_encoder_scorer(directory, manifest),
        TfidfScorer.load(directory),
        spec,
        temperature=manifest.temperature,
        detector=detector,
    )
