"""Retrain a router on new labelled rows and keep it only if it beats the serving router on
rows neither was trained on.

The rows are split once (stratified, seeded): the training part trains a candidate with the
usual ``train_router`` (its own validation hold-out inside it chooses the temperature and the
abstain threshold); the comparison part is never trained or tuned on, and both routers' routing
decisions are scored on it. Each row may carry a group name (for the ledger: ``corrected``
when feedback corrected its route, ``confident`` when the serving router's own confident
label is used), and the report gives the accuracy per group, so "fixes the corrected rows
without losing the others" is a number, not a hope.

Labels of the confident rows come from the serving router itself, so on them it is right by
construction; the candidate wins only by fixing corrected rows without breaking those.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from router_training.artifact import LoadedRouter, load_router
from router_training.data import LabelledData, stratified_split
from router_training.finish import check_out, replace_artifact
from router_training.train import train_router

__all__ = ["RetrainReport", "decision_scores", "retrain_if_better"]

ABSTAIN = "(abstain)"


class RetrainReport(BaseModel):
    """What ``retrain_if_better`` did and why."""

    model_config = ConfigDict(extra="forbid")

    replaced: bool = Field(description="Whether the candidate was written to the output.")
    reason: str = Field(description="Why it was or was not written.")
    train_rows: int = Field(description="Rows the candidate was trained on.")
    compared_rows: int = Field(description="Rows both routers were scored on.")
    serving: dict[str, Any] = Field(description="The serving router's scores on those rows.")
    candidate: dict[str, Any] = Field(description="The candidate's scores on those rows.")
    candidate_version: str = Field(description="The candidate artifact's version.")
    candidate_kind: str = Field(description="The candidate artifact's kind.")


def decision_scores(
    router: LoadedRouter, texts: Sequence[str], labels: Sequence[str], groups: Sequence[str]
) -> dict[str, Any]:
    """Accuracy and macro-F1 of the router's decisions (its route; an abstention counts as
    its out-of-scope label, or as no label) against ``labels``, overall and per group."""
    from sklearn.metrics import f1_score

    oos = router.manifest.out_of_scope_label or ABSTAIN
    decided = [p.route or oos for p in router.predict(list(texts))] if texts else []
    right = [d == label for d, label in zip(decided, labels, strict=True)]
    scores: dict[str, Any] = {
        "accuracy": sum(right) / len(right) if right else None,
        "macro_f1": float(f1_score(list(labels), decided, average="macro", zero_division=0))
        if right
        else None,
    }
    for group in sorted(set(groups)):
        hits = [r for r, g in zip(right, groups, strict=True) if g == group]
        scores[f"{group}_accuracy"] = sum(hits) / len(hits)
        scores[f"{group}_rows"] = len(hits)
    return scores


def retrain_if_better(
    rows: LabelledData,
    groups: Sequence[str],
    serving: Path,
    out: Path,
    *,
    extra: LabelledData | None = None,
    compare_fraction: float = 0.2,
    seed: int = 0,
    progress: bool = True,
    **options: Any,
) -> RetrainReport:
    """Train a candidate on most of ``rows`` (plus every row of ``extra``, e.g. the serving
    router's own training file); write it to ``out`` only if its accuracy on the rest of
    ``rows`` beats the ``serving`` router's. ``options`` go to ``train_router`` (kind, ...)."""
    if out.resolve() == serving.resolve():
        raise ValueError(
            f"--out {out} is the serving router: write the new router to a new directory and "
            "swap the service to it (a running replica may read the old files at any time)"
        )
    check_out(out)
    serving_router = load_router(serving)
    tagged = _tag(rows, groups)
    train_part, compared = stratified_split(tagged, compare_fraction, seed)
    compared_groups = [label.split("\t", 1)[0] for label in compared.labels]
    compared = _untag(compared)
    with tempfile.TemporaryDirectory(prefix=".retrain-", dir=out.parent) as work:
        data = Path(work) / "train.jsonl"
        _write_jsonl(_untag(train_part), data, extra)
        candidate_dir = Path(work) / "candidate"
        train_router(data, candidate_dir, seed=seed, progress=progress, **options)
        candidate = load_router(candidate_dir)
        before = decision_scores(serving_router, compared.texts, compared.labels, compared_groups)
        after = decision_scores(candidate, compared.texts, compared.labels, compared_groups)
        better = (after["accuracy"] or 0.0) > (before["accuracy"] or 0.0)
        reason = (
            f"accuracy on {len(compared)} held-out rows: candidate {after['accuracy']:.4f}, "
            f"serving {before['accuracy']:.4f}"
        )
        if better:
            replace_artifact(candidate_dir, out)
    return RetrainReport(
        replaced=better,
        reason=("written: " if better else "not written (not better): ") + reason,
        train_rows=len(train_part) + (len(extra) if extra is not None else 0),
        compared_rows=len(compared),
        serving=before,
        candidate=after,
        candidate_version=candidate.version,
        candidate_kind=candidate.manifest.kind,
    )


def _tag(rows: LabelledData, groups: Sequence[str]) -> LabelledData:
    """Labels prefixed with their group, so the split is stratified by both."""
    if len(groups) != len(rows):
        raise ValueError(f"{len(groups)} groups for {len(rows)} rows")
    labels = [f"{g}\t{label}" for g, label in zip(groups, rows.labels, strict=True)]
    return LabelledData(rows.texts, labels, rows.source, rows.sha256, rows.boolean_labels)


def _untag(rows: LabelledData) -> LabelledData:
    labels = [label.split("\t", 1)[1] for label in rows.labels]
    return LabelledData(rows.texts, labels, rows.source, rows.sha256, rows.boolean_labels)


def _write_jsonl(rows: LabelledData, path: Path, extra: LabelledData | None) -> None:
    texts, labels = list(rows.texts), list(rows.labels)
    if extra is not None:
        texts, labels = texts + extra.texts, labels + extra.labels
    counts = Counter(labels)
    if len(counts) < 2:
        raise ValueError(
            f"the training rows carry one label only ({next(iter(counts))!r}); a router needs "
            "at least two"
        )
    with path.open("w", encoding="utf-8") as handle:
        for text, label in zip(texts, labels, strict=True):
            handle.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")
