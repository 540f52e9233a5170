"""What a fit takes and what it gives: ``TrainConfig`` in, ``FitResult`` out.

Shared by every model kind's fit function (``linear.fit_linear``, ``bert.fit_encoder``,
``ensemble.fit_ensemble``), the Hugging Face trainer set-up, ``train`` and ``compose``; it
imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from router_training.gate import parse_gate_target
from router_training.metric_names import DEFAULT_GATE_TARGET

__all__ = ["FitResult", "Runtime", "TrainConfig"]

Runtime = Literal["sklearn", "torch", "onnx"]


class TrainConfig(BaseModel):
    """Everything that decides a trained router besides the data."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["auto", "bert", "tfidf", "hybrid", "ensemble"] = Field(
        "auto",
        description="Model family: auto (train the candidates that fit the time budget and keep "
        "the best on validation, never worse than TF-IDF), encoder, TF-IDF + LR, TF-IDF + "
        "static vectors + LR, or an encoder and a TF-IDF/hybrid model averaged in "
        "log-probability (ensemble).",
    )
    seed: int = Field(0, description="Seed for splits, initialisation and data order.")
    epochs: float | None = Field(
        None,
        gt=0,
        description="Max epochs (None: the kind's default); a fraction trains part of the "
        "last epoch (kind auto shrinks the encoder's epochs to fit its time budget).",
    )
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
    fine_label_field: str | None = Field(
        "auto",
        description="Training-data field of finer labels nested in the label (an intent within "
        "a domain): encoders also learn them through a second head that is dropped after "
        "training, which keeps each finer class compact for the out-of-scope distance "
        "(router_training.fine_labels). 'auto': a field that fits, if any; None: off.",
    )
    oos_distance_rate: float | None = Field(
        None,
        ge=0.0,
        lt=0.5,
        description="Ensemble kind with an out-of-scope label: abstain on the queries whose "
        "combined score (top probability and embedding distance to the in-scope labels, "
        "router_training.distance) is below that of this share of the in-scope validation "
        "queries; this rule then replaces the abstain target's threshold. None: off.",
    )
    progress: bool = Field(True, description="Show progress bars.")
    threads: int = Field(
        1, ge=1, description="CPU threads for torch and ONNX Runtime (1 is fastest on a busy CPU)."
    )

    time_budget_s: float = Field(
        600.0,
        gt=0,
        description="Wall-time budget of kind auto in seconds: candidates whose estimated cost "
        "does not fit in what is left are skipped, and the encoder's fine-tuning stops in time.",
    )
    encoder_time_limit_s: float | None = Field(
        None,
        gt=0,
        description="Stop fine-tuning an encoder after this many seconds, keeping the best "
        "validated weights so far (None: no limit; kind auto sets it from the budget).",
    )

    @field_validator("ensemble_gate")
    @classmethod
    def _gate_parses(cls, value: str) -> str:
        parse_gate_target(value)  # raises ValueError with the accepted forms
        return value


@dataclass(frozen=True, slots=True)
class FitResult:
    """A fitted model whose files are saved in the staging directory, before calibration.

    The finishing step (``finish.finish_artifact``) fits the temperature and the abstain
    threshold on ``val_logits`` and writes the manifest listing ``files``.
    """

    files: tuple[str, ...]
    """Model files written into the staging directory, relative to it."""
    val_logits: np.ndarray
    """Raw logits of the held-out rows, shape (rows, labels)."""
    runtime: Runtime
    """Inference engine the artifact uses."""
    pooling: Literal["mean", "cls"] | None = None
    """Encoder pooling (encoder kinds), None otherwise."""
    params: dict[str, Any] = field(default_factory=dict)
    """Kind-specific training parameters and history, merged into the manifest's params."""
    embed: Callable[[Sequence[str]], np.ndarray | None] | None = None
    """Encoder kinds: pooled embeddings of texts through the exported model (or None)."""
    abstain_target: str | None = None
    """The abstain target the finishing step uses instead of the config's (an ensemble with
    a distance detector: "none", its rule already abstains), or None."""
