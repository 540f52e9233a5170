"""Router quality and speed: accuracy, macro-F1, per-label report, confusion matrix,
calibration error, abstention, out-of-scope recall, single-query latency and batched throughput.

Decisions: an abstained query counts as predicting the out-of-scope label when the model has
one; without one it keeps its top label for accuracy/F1 and shows up in ``abstain_rate`` and
``accepted_accuracy``. ``in_scope_accuracy`` counts an in-scope query right only when the router
routed it (did not abstain) to its true label. For an ensemble, ``encoder_fraction`` is the
share of the file's queries its encoder scored (1.0 without a gate).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from router_training.artifact import LoadedRouter, load_router
from router_training.calibration import abstentions, expected_calibration_error
from router_training.data import check_known_labels, read_labelled

__all__ = ["evaluate_router", "measure_speed", "quality_metrics"]


def quality_metrics(
    probs: np.ndarray,
    targets: np.ndarray,
    labels: Sequence[str],
    oos_index: int | None,
    threshold: float,
) -> dict[str, Any]:
    """All quality metrics of calibrated probabilities against integer targets."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    top, abstained = abstentions(probs, threshold, oos_index)
    decided = np.where(abstained, oos_index, top) if oos_index is not None else top
    index = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        targets, decided, labels=index, zero_division=0
    )
    present = [i for i in index if support[i] > 0]
    in_scope = targets != oos_index if oos_index is not None else np.ones(len(targets), bool)
    accepted = ~abstained
    metrics: dict[str, Any] = {
        "examples": len(targets),
        "accuracy": float((decided == targets).mean()),
        "macro_f1": float(
            f1_score(targets, decided, labels=present, average="macro", zero_division=0)
        ),
        "argmax_accuracy": float((top == targets).mean()),
        "in_scope_accuracy": float(((top == targets) & accepted)[in_scope].mean())
        if in_scope.any()
        else None,
        "oos_recall": float(abstained[~in_scope].mean()) if (~in_scope).any() else None,
        "abstain_rate": float(abstained.mean()),
        "accepted_accuracy": float((top == targets)[accepted].mean()) if accepted.any() else None,
        "ece": expected_calibration_error(probs, targets),
        "auroc": _auroc(probs, targets),
        "abstain_threshold": float(threshold),
        "per_label": {
            labels[i]: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i in index
        },
        "confusion_matrix": {
            "labels": list(labels),
            "matrix": confusion_matrix(targets, decided, labels=index).tolist(),
        },
    }
    return metrics


def _auroc(probs: np.ndarray, targets: np.ndarray) -> float | None:
    """ROC AUC of the second label's probability, for two labels (e.g. a difficulty scorer's
    false/true) when both occur; None otherwise."""
    from sklearn.metrics import roc_auc_score

    if probs.shape[1] != 2 or len(set(targets.tolist())) != 2:
        return None
    return float(roc_auc_score(targets == 1, probs[:, 1]))


def measure_speed(
    predict: Any,
    texts: Sequence[str],
    *,
    single_queries: int = 300,
    batch_size: int = 64,
    min_seconds: float = 1.0,
) -> dict[str, float]:
    """Single-query latency p50/p99 (ms) and batched throughput (queries/s) of ``predict``.

    ``predict`` takes a list of texts. Queries cycle through ``texts`` in order; a short warm-up
    runs first. Throughput repeats full batches for at least ``min_seconds``.
    """
    pool = list(texts) or ["probe query"]
    for text in pool[:10]:
        predict([text])
    timings = []
    for i in range(single_queries):
        text = pool[i % len(pool)]
        start = time.perf_counter()
        predict([text])
        timings.append((time.perf_counter() - start) * 1000.0)
    batches = [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
    batches = [b for b in batches if len(b) == batch_size] or [pool[:batch_size]]
    predict(batches[0])
    done, start, i = 0, time.perf_counter(), 0
    while True:
        batch = batches[i % len(batches)]
        predict(batch)
        done += len(batch)
        i += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and i >= len(batches[:3]):
            break
    return {
        "latency_ms_p50": float(np.percentile(timings, 50)),
        "latency_ms_p99": float(np.percentile(timings, 99)),
        "throughput_qps": float(done / elapsed),
        "throughput_batch_size": float(batch_size),
    }


def evaluate_router(
    model: Path | str,
    data: Path | str,
    *,
    text_field: str = "text",
    label_field: str = "label",
    speed: bool = True,
    batch_size: int = 64,
    single_queries: int = 300,
) -> dict[str, Any]:
    """Load an artifact and report every metric on a labelled file (plus speed unless off)."""
    router = load_router(model)
    data_set = read_labelled(data, text_field=text_field, label_field=label_field, min_labels=1)
    check_known_labels(data_set, router.labels)
    targets = np.array([router.labels.index(label) for label in data_set.labels])
    counted = _encoder_counts(router)
    probs = _batched_probabilities(router, data_set.texts, batch_size)
    encoder_fraction = _encoder_fraction(router, counted)
    oos = router.manifest.out_of_scope_label
    metrics = quality_metrics(
        probs,
        targets,
        router.labels,
        router.labels.index(oos) if oos is not None else None,
        router.manifest.abstain_threshold,
    )
    metrics.update(
        {"artifact_version": router.version, "kind": router.manifest.kind, "data": str(data)}
    )
    if encoder_fraction is not None:
        metrics["encoder_fraction"] = encoder_fraction
    if speed:
        metrics.update(
            measure_speed(
                router.predict, data_set.texts, batch_size=batch_size, single_queries=single_queries
            )
        )
    return metrics


def _batched_probabilities(
    router: LoadedRouter, texts: Sequence[str], batch_size: int
) -> np.ndarray:
    parts = [
        router.probabilities(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, len(router.labels)))


def _encoder_counts(router: Any) -> tuple[int, int] | None:
    """(queries scored, queries the encoder scored) so far, for an ensemble's scorer."""
    scorer = router._scorer
    if not hasattr(scorer, "encoder_texts"):
        return None
    return int(scorer.texts_scored), int(scorer.encoder_texts)


def _encoder_fraction(router: Any, before: tuple[int, int] | None) -> float | None:
    """Share of the queries scored since ``before`` that reached the ensemble's encoder."""
    after = _encoder_counts(router)
    if before is None or after is None or after[0] == before[0]:
        return None
    return (after[1] - before[1]) / (after[0] - before[0])
