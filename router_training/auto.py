"""``kind="auto"``: train the candidate kinds that fit the data and the time budget, keep the
one that scores best on the validation split, and record every candidate's scores.

The TF-IDF baseline is always trained first and is always a candidate, so the chosen router is
never worse on validation than the baseline trained in the same run (by the selection score,
``selection_score``). Then the MiniLM + TF-IDF ``ensemble`` (its epochs cut to fit the time
left, and its fine-tuning under a deadline, so a slow machine gets a shorter fine-tune rather
than a blown budget), then the ``hybrid`` kind with the time that is left. The encoder goes
before the hybrid because it is the candidate the budget decides: on a busy 2-core machine,
hybrid first (its static-vector distillation took ~5 minutes at load average 9) left too
little of 10 minutes for any fine-tuning, while the hybrid is the cheap fallback where the
encoder does not fit (long texts). A candidate whose estimated cost does not fit in what is
left of the budget, or whose base model is not installed, is skipped with the reason recorded.

Every candidate uses the same training rows, the same validation rows and the same abstain
target, so their scores are comparable; each is calibrated on the validation rows exactly as a
single-kind run would be. The estimates below were measured on this project's 2-core machine
(BENCHMARKS.md); they only decide what is attempted, the deadline bounds what is spent.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router_training.card import write_card
from router_training.config import FitResult, TrainConfig
from router_training.data import LabelledData
from router_training.manifest import MANIFEST, Manifest, read_manifest

__all__ = [
    "AUTO_CANDIDATES",
    "CandidatePlan",
    "CandidateResult",
    "choose",
    "encoder_length",
    "minilm_missing",
    "plan_candidates",
    "record_choice",
    "run_candidates",
    "selection_score",
]

log = logging.getLogger("router_training")

#: Candidate kinds in the order they are tried (the baseline, the encoder, the fallback).
AUTO_CANDIDATES = ("tfidf", "ensemble", "hybrid")

#: Rows above which the encoder candidate is not tried (fine-tuning cost grows with rows).
MAX_ENCODER_ROWS = 60_000

# Cost model (seconds), measured on the 2-core machine: TF-IDF + LR per training row; the
# static-vector distillation (30,522 MiniLM token passes) per thread-second; MiniLM fine-tuning
# per row and epoch on one thread at max_length 32; what follows the fine-tuning (last
# validation, ONNX fusion + int8, the TF-IDF member, the distance detector's embeddings, the
# gate): the default CLINC150 run of 2026-12-03 spent ~150 s there at load average 7-10, and
# the 60 s estimated before made it overrun a 600 s budget by 81 s.
_TFIDF_S_PER_ROW = 0.0012
_DISTIL_CPU_S = 110.0
_ENCODER_CPU_S_PER_ROW_EPOCH = 0.021
_ENCODER_FIXED_S = 150.0

#: What the ensemble candidate changes from the user's settings (unless the user set them).
#: ``max_length`` is chosen from the data (``encoder_length``).
ENSEMBLE_DEFAULTS: dict[str, Any] = {
    "base_model": Path("minilm"),
    "epochs": 3,
    "learning_rate": 1e-4,
    "onnx_optimization": "int8",
}


#: Kind auto's abstain target unless the caller gives one: at most 1% of the in-scope
#: validation queries abstain (in-scope accuracy first; the single kinds' "auto" allows 2%).
AUTO_ABSTAIN_TARGET = "abstain_rate<=0.01"


def _abstain_rate(target: str) -> float | None:
    """R of an ``abstain_rate<=R`` target, else None."""
    match = re.fullmatch(r"\s*abstain_rate\s*<=\s*([0-9.]+)\s*", target)
    return float(match.group(1)) if match else None


def encoder_length(texts: list[str]) -> int:
    """Tokens to keep per query: about the 90th percentile of the texts' WordPiece length
    (estimated as 1.4 tokens a word, plus [CLS]/[SEP]), rounded up to a multiple of 16, within
    32..128. Short chat queries (CLINC150) get 32; exam questions (MMLU-Pro) 128."""
    if not texts:
        return 32
    lengths = sorted(len(text.split()) for text in texts)
    p90 = lengths[min(len(lengths) - 1, int(0.9 * len(lengths)))]
    tokens = int(1.4 * p90) + 2
    return max(32, min(128, -(-tokens // 16) * 16))


@dataclass(frozen=True, slots=True)
class CandidatePlan:
    """One candidate to try: its kind, its settings and the estimated cost."""

    name: str
    config: TrainConfig
    estimate_s: float
    skip_reason: str | None = None
    epoch_s: float | None = None
    """Encoder candidates: the estimated cost of one fine-tuning epoch (within estimate_s)."""


@dataclass(slots=True)
class CandidateResult:
    """What one candidate scored on validation (or why it was not trained)."""

    name: str
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    score: float | None = None
    skipped: str | None = None
    staging: Path | None = None
    note: str = ""

    def record(self) -> dict[str, Any]:
        """The candidate as the manifest and the report keep it."""
        keys = (
            "macro_f1",
            "in_scope_accuracy",
            "oos_recall",
            "auroc",
            "accuracy",
            "abstain_threshold",
        )
        return {
            "name": self.name,
            "score": self.score,
            "seconds": round(self.seconds, 1),
            "skipped": self.skipped,
            "note": self.note or None,
            **{key: self.metrics.get(key) for key in keys},
        }


SELECTION_RULE = (
    "validation macro-F1 of the routing decisions, averaged with out-of-scope recall when the "
    "validation rows include out-of-scope queries (ROC AUC of P(true) for a true/false "
    "scorer such as --label-field small_correct); ties go to the cheaper candidate"
)


def selection_score(metrics: dict[str, Any], *, scorer: bool = False) -> float:
    """The validation score ``auto`` maximises: macro-F1 of the routing decisions (an abstained
    query counts as out-of-scope), averaged with out-of-scope recall where the validation rows
    include out-of-scope queries. Every candidate's threshold is chosen for the same abstain
    target, so a candidate cannot buy recall by abstaining more often on in-scope queries.

    A ``scorer`` (true/false labels: the cascade's difficulty scorer) is used through its
    probability, thresholded later by ``spillway cascade calibrate``, so it is chosen by how
    well that probability ranks queries (ROC AUC), not by decisions at one threshold."""
    if scorer and metrics.get("auroc") is not None:
        return float(metrics["auroc"])
    macro_f1 = float(metrics["macro_f1"])
    recall = metrics.get("oos_recall")
    return macro_f1 if recall is None else (macro_f1 + float(recall)) / 2


def plan_candidates(
    config: TrainConfig,
    rows: int,
    explicit: frozenset[str],
    available: Callable[[], str | None],
    max_length: int = 32,
) -> list[CandidatePlan]:
    """The candidates for ``rows`` training rows and ``config.time_budget_s``.

    ``explicit`` names the settings the caller gave (they are kept; the ensemble's defaults
    and ``max_length``, see ``encoder_length``, fill the others). ``available`` returns why
    MiniLM cannot be used, or None.
    """
    threads = config.threads
    if "abstain_target" not in explicit:
        config = config.model_copy(update={"abstain_target": AUTO_ABSTAIN_TARGET})
    tfidf_s = 5.0 + _TFIDF_S_PER_ROW * rows
    plans = [CandidatePlan("tfidf", _candidate_config(config, "tfidf", {}), tfidf_s)]
    missing = available()
    # the distance detector's rule abstains on the same share of in-scope validation rows
    # as the other candidates' threshold, so the comparison stays fair
    defaults = {
        **ENSEMBLE_DEFAULTS,
        "max_length": max_length,
        "oos_distance_rate": _abstain_rate(config.abstain_target),
    }
    ensemble_options = {k: v for k, v in defaults.items() if k not in explicit}
    ensemble = _candidate_config(config, "ensemble", ensemble_options)
    epoch_s = _ENCODER_CPU_S_PER_ROW_EPOCH * rows * (ensemble.max_length / 32) / threads**0.85
    ensemble_s = tfidf_s + _ENCODER_FIXED_S + epoch_s * (ensemble.epochs or 3)
    reason = missing
    if reason is None and rows > MAX_ENCODER_ROWS:
        reason = f"{rows} training rows (more than {MAX_ENCODER_ROWS}): fine-tuning too slow"
    plans.append(CandidatePlan("ensemble", ensemble, ensemble_s, reason, epoch_s))
    hybrid_s = tfidf_s + _DISTIL_CPU_S / threads
    plans.append(
        CandidatePlan("hybrid", _candidate_config(config, "hybrid", {}), hybrid_s, missing)
    )
    return plans


#: The fewest fine-tuning epochs worth training an encoder candidate for.
MIN_ENCODER_EPOCHS = 0.75


def _fit_in(plan: CandidatePlan, left: float) -> tuple[TrainConfig | None, str]:
    """The plan's config for the ``left`` seconds of the budget (an encoder's epochs shrunk
    to fit, its fine-tuning given a deadline), or None and why it cannot fit."""
    config = plan.config
    if plan.estimate_s <= left and plan.epoch_s is None:
        return config, ""
    if plan.epoch_s is None:
        return None, f"estimated {plan.estimate_s:.0f} s, {max(left, 0):.0f} s of the budget left"
    fixed = plan.estimate_s - plan.epoch_s * (config.epochs or 3)
    epochs = min(float(config.epochs or 3), (left - fixed) / plan.epoch_s)
    if epochs < MIN_ENCODER_EPOCHS:
        return None, (
            f"an epoch is estimated at {plan.epoch_s:.0f} s; {max(left, 0):.0f} s of the budget "
            f"left is not enough for {MIN_ENCODER_EPOCHS} epoch"
        )
    note = "" if epochs >= (config.epochs or 3) else f"epochs cut to {epochs:.2f} to fit the budget"
    update = {"epochs": round(epochs, 2), "encoder_time_limit_s": max(left - fixed, 30.0)}
    return config.model_copy(update=update), note


def _candidate_config(config: TrainConfig, kind: str, options: dict[str, Any]) -> TrainConfig:
    return config.model_copy(update={"kind": kind, **options})


FitAndFinish = Callable[[TrainConfig, Path], tuple[FitResult, Manifest]]


def run_candidates(
    plans: list[CandidatePlan],
    budget_s: float,
    fit_and_finish: FitAndFinish,
    make_staging: Callable[[], Path],
) -> list[CandidateResult]:
    """Train each plan that fits in what is left of ``budget_s``; the first (TF-IDF) always.

    ``fit_and_finish(config, staging)`` fits one candidate into ``staging`` and calibrates it
    (writing its manifest); the encoder candidate gets the remaining time as its fine-tuning
    limit, less the time its export needs.
    """
    started = time.monotonic()
    results: list[CandidateResult] = []
    for index, plan in enumerate(plans):
        left = budget_s - (time.monotonic() - started)
        config, note = (plan.config, "") if index == 0 else _fit_in(plan, left)
        skip = plan.skip_reason or (note if config is None else None)
        if skip is not None or config is None:
            log.info("auto: skipping %s (%s)", plan.name, skip)
            results.append(CandidateResult(plan.name, skipped=skip))
            continue
        log.info("auto: training %s (estimated %.0f s) %s", plan.name, plan.estimate_s, note)
        result = _train_one(plan.name, config, fit_and_finish, make_staging)
        result.note = note
        results.append(result)
    return results


def _train_one(
    name: str, config: TrainConfig, fit_and_finish: FitAndFinish, make_staging: Callable[[], Path]
) -> CandidateResult:
    staging = make_staging()
    began = time.monotonic()
    try:
        _, manifest = fit_and_finish(config, staging)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    metrics = manifest.metrics
    result = CandidateResult(
        name,
        seconds=time.monotonic() - began,
        metrics=metrics,
        score=selection_score(metrics, scorer=manifest.boolean_labels),
        staging=staging,
    )
    log.info("auto: %s scored %.4f on validation in %.0f s", name, result.score, result.seconds)
    return result


def choose(results: list[CandidateResult]) -> tuple[CandidateResult, str]:
    """The best-scoring trained candidate (ties: the cheaper, earlier one) and why."""
    trained = [r for r in results if r.score is not None]
    if not trained:
        raise ValueError("auto: no candidate was trained")
    baseline = trained[0]
    best = baseline
    for result in trained[1:]:
        assert result.score is not None and best.score is not None
        if result.score > best.score:
            best = result
    assert best.score is not None and baseline.score is not None
    if best is baseline:
        why = f"{best.name} scored highest on validation ({best.score:.4f})"
        if len(trained) > 1:
            why += "; no other candidate beat the TF-IDF baseline"
        return best, why
    return best, (
        f"{best.name} scored highest on validation ({best.score:.4f} vs the TF-IDF baseline's "
        f"{baseline.score:.4f})"
    )


def minilm_missing() -> str | None:
    """Why the MiniLM candidates cannot be trained here (its package is missing), or None."""
    from router_training.bert import resolve_base_model

    try:
        resolve_base_model(Path("minilm"))
    except (ValueError, ImportError, FileNotFoundError) as error:
        return str(error)
    return None


def record_choice(
    staging: Path,
    records: list[dict[str, Any]],
    chosen: str,
    why: str,
    train: LabelledData,
) -> Manifest:
    """Add the comparison to the chosen candidate's manifest (``params.auto``) and model card.

    Only ``params`` changes, so the artifact's version (model files and calibration) does not.
    """
    manifest = read_manifest(staging)
    auto = {
        "chosen": chosen,
        "reason": why,
        "selection": SELECTION_RULE,
        "candidates": records,
    }
    manifest = manifest.model_copy(update={"params": {**manifest.params, "auto": auto}})
    (staging / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
    write_card(staging, manifest, train.label_counts)
    return manifest
