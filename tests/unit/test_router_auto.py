"""Kind auto: which candidates are planned, how one is chosen, and what the artifact records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from router_training.auto import (
    CandidatePlan,
    CandidateResult,
    choose,
    encoder_length,
    plan_candidates,
    run_candidates,
    selection_score,
)
from router_training.config import FitResult, TrainConfig
from router_training.manifest import Manifest
from router_training.samples import DOMAINS_SAMPLE
from router_training.train import train_router


def _installed() -> None:
    return None


def test_small_data_plans_every_candidate_with_the_ensemble_defaults() -> None:
    plans = plan_candidates(TrainConfig(kind="auto"), 15_000, frozenset(), _installed)
    assert [p.name for p in plans] == ["tfidf", "ensemble", "hybrid"]
    assert all(p.skip_reason is None for p in plans)
    ensemble = plans[1].config
    assert (ensemble.kind, ensemble.max_length, ensemble.epochs) == ("ensemble", 32, 3)
    assert all(p.config.abstain_target == "abstain_rate<=0.01" for p in plans)
    assert ensemble.oos_distance_rate == 0.01
    other = TrainConfig(kind="auto", abstain_target="oos_recall>=0.8")
    kept = plan_candidates(other, 100, frozenset({"abstain_target"}), _installed)
    assert kept[1].config.abstain_target == "oos_recall>=0.8"
    assert kept[1].config.oos_distance_rate is None  # the detector would override the target
    assert plans[0].estimate_s < plans[2].estimate_s < plans[1].estimate_s


def test_encoder_length_follows_the_data() -> None:
    assert encoder_length(["book a flight to paris"] * 10) == 32
    assert encoder_length([" ".join(["word"] * 80)] * 10) == 128
    assert encoder_length([" ".join(["word"] * 30)] * 10) == 48


def test_settings_the_user_gave_are_kept_for_the_encoder() -> None:
    config = TrainConfig(kind="auto", max_length=48, epochs=1)
    plans = plan_candidates(config, 1_000, frozenset({"max_length", "epochs"}), _installed)
    assert (plans[1].config.max_length, plans[1].config.epochs) == (48, 1)


def test_large_data_or_a_missing_encoder_skip_candidates() -> None:
    plans = plan_candidates(TrainConfig(kind="auto"), 500_000, frozenset(), _installed)
    assert plans[1].skip_reason is not None and "500000" in plans[1].skip_reason
    missing = plan_candidates(TrainConfig(kind="auto"), 100, frozenset(), lambda: "no MiniLM")
    assert [p.skip_reason for p in missing] == [None, "no MiniLM", "no MiniLM"]


def test_selection_score_averages_oos_recall_only_when_present() -> None:
    assert selection_score({"macro_f1": 0.9, "oos_recall": None}) == pytest.approx(0.9)
    assert selection_score({"macro_f1": 0.9, "oos_recall": 0.7}) == pytest.approx(0.8)
    scorer = {"macro_f1": 0.6, "oos_recall": None, "auroc": 0.7}
    assert selection_score(scorer, scorer=True) == pytest.approx(0.7)
    assert selection_score(scorer) == pytest.approx(0.6)


def _result(name: str, score: float | None, skipped: str | None = None) -> CandidateResult:
    return CandidateResult(name, score=score, skipped=skipped, metrics={"macro_f1": score})


def test_choose_never_ships_below_the_baseline() -> None:
    best, why = choose([_result("tfidf", 0.90), _result("hybrid", 0.89), _result("ensemble", None)])
    assert best.name == "tfidf" and "no other candidate beat" in why
    best, why = choose([_result("tfidf", 0.90), _result("hybrid", 0.93), _result("ensemble", 0.92)])
    assert best.name == "hybrid" and "0.9000" in why
    tie, _ = choose([_result("tfidf", 0.90), _result("hybrid", 0.90)])
    assert tie.name == "tfidf"


def test_candidates_that_do_not_fit_the_budget_are_skipped(tmp_path: Path) -> None:
    trained: list[str] = []

    def fit(config: TrainConfig, staging: Path) -> tuple[FitResult, Manifest]:
        trained.append(config.kind)
        manifest = Manifest.model_construct(metrics={"macro_f1": 0.5, "oos_recall": None})
        return FitResult(files=(), val_logits=np.zeros((1, 2)), runtime="sklearn"), manifest

    config = TrainConfig(kind="auto")
    plans = [
        CandidatePlan("tfidf", config.model_copy(update={"kind": "tfidf"}), 1e6),
        CandidatePlan("hybrid", config.model_copy(update={"kind": "hybrid"}), 1e6),
    ]
    results = run_candidates(plans, 10.0, fit, lambda: tmp_path)
    assert trained == ["tfidf"]  # the baseline is trained whatever its estimate
    assert results[1].skipped is not None and "budget" in results[1].skipped


def test_the_encoder_gets_fewer_epochs_to_fit_the_budget(tmp_path: Path) -> None:
    seen: list[TrainConfig] = []

    def fit(config: TrainConfig, staging: Path) -> tuple[FitResult, Manifest]:
        seen.append(config)
        manifest = Manifest.model_construct(metrics={"macro_f1": 0.5, "oos_recall": None})
        return FitResult(files=(), val_logits=np.zeros((1, 2)), runtime="sklearn"), manifest

    base = TrainConfig(kind="ensemble", epochs=2)
    plans = [
        CandidatePlan("tfidf", base.model_copy(update={"kind": "tfidf"}), 1.0),
        CandidatePlan("ensemble", base, 60.0 + 2 * 100.0, epoch_s=100.0),
    ]
    results = run_candidates(plans, 210.0, fit, lambda: tmp_path)
    assert seen[1].epochs is not None and 1.4 < seen[1].epochs <= 1.5
    assert seen[1].encoder_time_limit_s is not None and seen[1].encoder_time_limit_s > 100
    assert "cut" in results[1].note
    too_little = run_candidates(plans, 100.0, fit, lambda: tmp_path)
    assert too_little[1].skipped is not None and "epoch" in too_little[1].skipped


def test_auto_writes_the_chosen_artifact_with_every_candidate(tmp_path: Path) -> None:
    out = tmp_path / "auto"
    report = train_router(DOMAINS_SAMPLE, out, time_budget_s=1.0, progress=False)
    assert report.kind == "tfidf"  # nothing else fits in one second
    names = [c["name"] for c in report.candidates]
    assert names == ["tfidf", "ensemble", "hybrid"]
    assert report.candidates[0]["score"] == pytest.approx(report.metrics["macro_f1"])
    manifest: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    assert manifest["params"]["auto"]["chosen"] == "tfidf"
    assert len(manifest["params"]["auto"]["candidates"]) == 3
    card = (out / "README.md").read_text()
    assert "How this router was chosen" in card and "| tfidf |" in card
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auto"]  # no staging left behind


def test_a_difficulty_scorer_is_chosen_by_auroc(tmp_path: Path) -> None:
    rows = [
        {"text": f"{'prove the theorem about' if i % 3 else 'what is'} item {i}", "ok": i % 3 == 0}
        for i in range(120)
    ]
    data = tmp_path / "outcomes.jsonl"
    data.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    report = train_router(data, tmp_path / "scorer", label_field="ok", time_budget_s=1.0)
    assert report.labels == ["false", "true"]
    assert report.metrics["auroc"] == pytest.approx(1.0)
    assert report.candidates[0]["score"] == pytest.approx(report.metrics["auroc"])
