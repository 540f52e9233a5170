"""Fit the linear kinds: "tfidf" (TF-IDF + logistic regression) and "hybrid" (the same
features plus static sentence vectors distilled from a pretrained encoder)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from router_training.bert import resolve_base_model
from router_training.config import FitResult, TrainConfig
from router_training.data import LabelledData
from router_training.static_embed import StaticEmbedder
from router_training.tfidf import fit_tfidf

__all__ = ["fit_linear"]


def fit_linear(
    config: TrainConfig,
    kind: Literal["tfidf", "hybrid"],
    train: LabelledData,
    held: LabelledData,
    labels: list[str],
    staging: Path,
) -> FitResult:
    """Fit a TF-IDF (or hybrid) LR, save its files into ``staging``; files and val logits."""
    y_train = np.array([labels.index(label) for label in train.labels])
    embedder = _static_embedder(config, train) if kind == "hybrid" else None
    scorer = fit_tfidf(
        train.texts, y_train, seed=config.seed, n_classes=len(labels), embedder=embedder
    )
    return FitResult(
        files=tuple(scorer.save(staging)),
        val_logits=scorer.logits(held.texts),
        runtime="sklearn",
    )


def _static_embedder(config: TrainConfig, train: LabelledData) -> StaticEmbedder:
    base = resolve_base_model(config.base_model or Path("minilm"))
    assert base is not None
    return StaticEmbedder.distil(base, train.texts, progress=config.progress)
