"""The gated ensemble: gate targets, gate choice and the gated scorer (pure numpy, fake members)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from router_training.artifact import LoadedRouter, Manifest
from router_training.config import TrainConfig
from router_training.ensemble import EnsembleScorer, EnsembleSpec, combine, fit_gate, log_softmax
from router_training.gate import (
    ABSTAIN,
    GateTarget,
    choose_gate,
    decisions,
    gate_stats,
    parse_gate_target,
)

LABELS = ["billing", "code", "out_of_scope"]


class FakeScorer:
    """Fixed logits per text; records every batch it is asked to score."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table
        self.batches: list[list[str]] = []

    @property
    def n_outputs(self) -> int:
        return len(next(iter(self.table.values())))

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        return np.array([self.table[t] for t in texts], np.float64)


def spec(gate: float | None = None, weight: float = 0.5) -> EnsembleSpec:
    return EnsembleSpec(
        member="tfidf",
        encoder_weight=weight,
        encoder_temperature=1.5,
        member_temperature=0.5,
        gate_threshold=gate,
        gate_target="none" if gate is None else f"fixed={gate}",
    )


# member logits at temperature 0.5: "sure" -> p(billing) = 0.9951, "unsure" -> 0.5065,
# "oos" -> p(out_of_scope) = 0.9951, "flat" -> 1/3 each
MEMBER = {
    "sure": [3.0, 0.0, 0.0],
    "unsure": [0.5, 0.25, 0.0],
    "oos": [0.0, 0.0, 3.0],
    "flat": [0.0, 0.0, 0.0],
}
ENCODER = {
    "sure": [0.0, 2.0, 0.0],
    "unsure": [0.0, 4.0, 0.0],
    "oos": [0.0, 0.0, 1.0],
    "flat": [3.0, 0.0, 0.0],
}
TEXTS = list(MEMBER)


def scorer(gate: float | None, temperature: float = 0.8) -> EnsembleScorer:
    return EnsembleScorer(
        FakeScorer(ENCODER), FakeScorer(MEMBER), spec(gate), temperature=temperature
    )


def member_calibrated(texts: Sequence[str]) -> np.ndarray:
    return np.exp(log_softmax(np.array([MEMBER[t] for t in texts]), 0.5))


def test_parse_gate_target_forms_and_errors() -> None:
    assert parse_gate_target("agreement>=0.995") == GateTarget(metric="agreement", value=0.995)
    assert parse_gate_target("agreement>=0.995").abstain_share == 0.995
    both = parse_gate_target("agreement>=0.99, abstain_agreement>=0.8")
    assert (both.value, both.abstain_share) == (0.99, 0.8)
    assert both.spec() == "agreement>=0.99,abstain_agreement>=0.8"
    assert parse_gate_target(" encoder_fraction <= 0.3 ").spec() == "encoder_fraction<=0.3"
    assert parse_gate_target("fixed=0.9").value == 0.9
    assert parse_gate_target("none").metric == "none"
    bad_specs = (
        "agreement<=0.9",
        "encoder_fraction>=0.3",
        "fixed=1.5",
        "sometimes",
        "agreement",
        "fixed=0.9,abstain_agreement>=0.5",
        "agreement>=0.9,abstain_agreement<=0.5",
    )
    for bad in bad_specs:
        with pytest.raises(ValueError, match="gate target"):
            parse_gate_target(bad)
    with pytest.raises(ValidationError, match="gate target"):
        TrainConfig(kind="ensemble", ensemble_gate="agreement>0.9")


def test_decisions_abstain_on_out_of_scope_and_low_probability() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.5, 0.4, 0.1], [0.05, 0.05, 0.9], [0.1, 0.8, 0.1]])
    assert decisions(probs, 0.6, 2).tolist() == [0, ABSTAIN, ABSTAIN, 1]
    assert decisions(probs, 0.0, None).tolist() == [0, 0, 2, 1]


CONFIDENCE = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
NO_ABSTAIN = np.zeros(10, bool)


def agreement(value: float, abstain: float | None = None) -> GateTarget:
    return GateTarget(metric="agreement", value=value, abstain_value=abstain)


def test_choose_gate_for_agreement_is_the_smallest_passing_threshold() -> None:
    agrees = np.array([True, True, True, False, True, True, False, True, False, True])
    # at most 1 disagreement among gated rows (>= 0.9 of 10 agree): gate at 0.6 gates 0.8
    assert choose_gate(CONFIDENCE, agrees, NO_ABSTAIN, agreement(0.9)) == 0.6
    assert choose_gate(CONFIDENCE, agrees, NO_ABSTAIN, agreement(1.0)) == 0.9
    assert choose_gate(CONFIDENCE, agrees, NO_ABSTAIN, agreement(0.7)) == 0.2
    stats = gate_stats(CONFIDENCE, agrees, NO_ABSTAIN, 0.6)
    assert stats == {
        "holdout_agreement": 0.9,
        "holdout_abstain_agreement": None,
        "holdout_encoder_fraction": 0.4,
    }
    assert gate_stats(CONFIDENCE, agrees, NO_ABSTAIN, None)["holdout_encoder_fraction"] == 1.0
    never = np.zeros(10, bool)
    assert choose_gate(CONFIDENCE, never, NO_ABSTAIN, agreement(1.0)) is None


def test_choose_gate_keeps_the_full_ensembles_abstentions() -> None:
    agrees = np.array([True, True, True, False, True, True, False, True, False, True])
    # the full ensemble abstains on the rows at 0.8 and 0.5 (both lost when gated)
    abstains = np.isin(CONFIDENCE, [0.8, 0.5])
    assert choose_gate(CONFIDENCE, agrees, abstains, agreement(0.9)) == 0.9  # same 0.9 on both
    assert choose_gate(CONFIDENCE, agrees, abstains, agreement(0.9, abstain=0.5)) == 0.6
    assert choose_gate(CONFIDENCE, agrees, abstains, agreement(0.9, abstain=0.0)) == 0.6
    # 3 disagreements allowed overall, but gating 0.5 too would lose both abstentions
    assert choose_gate(CONFIDENCE, agrees, abstains, agreement(0.7, abstain=0.5)) == 0.6
    assert choose_gate(CONFIDENCE, agrees, abstains, agreement(0.7, abstain=0.0)) == 0.2
    stats = gate_stats(CONFIDENCE, agrees, abstains, 0.6)
    assert stats["holdout_abstain_agreement"] == 0.5 and stats["holdout_agreement"] == 0.9


def test_choose_gate_for_encoder_fraction_fixed_and_none() -> None:
    agrees = np.ones(10, bool)

    def choose(metric: str, value: float = 0.0) -> float | None:
        return choose_gate(CONFIDENCE, agrees, NO_ABSTAIN, GateTarget(metric=metric, value=value))  # type: ignore[arg-type]

    # 30% below the gate at most: the largest such gate is 0.5 (rows 0.2, 0.3, 0.4 go on)
    assert choose("encoder_fraction", 0.3) == 0.5
    assert choose("encoder_fraction", 0.0) == 0.2
    assert choose("encoder_fraction", 1.0) is None
    assert choose("fixed", 0.75) == 0.75
    assert choose("none") is None


def test_gated_scorer_sends_only_rows_below_the_gate_to_the_encoder() -> None:
    gated = scorer(gate=0.9)
    encoder, member = gated._encoder, gated._member
    out = gated.logits(TEXTS)
    assert member.batches == [TEXTS]  # type: ignore[attr-defined]
    assert encoder.batches == [["unsure", "flat"]]  # type: ignore[attr-defined]
    full = combine(
        np.array([ENCODER[t] for t in TEXTS]), np.array([MEMBER[t] for t in TEXTS]), spec()
    )
    below = [1, 3]
    assert np.allclose(out[below], full[below])  # below the gate: exactly the full ensemble
    above = [0, 2]
    assert np.allclose(
        out[above], 0.8 * log_softmax(np.array([MEMBER["sure"], MEMBER["oos"]]), 0.5)
    )
    assert (gated.texts_scored, gated.encoder_texts) == (4, 2)
    # a batch that is all above the gate never reaches the encoder
    gated.logits(["sure", "oos"])
    assert len(encoder.batches) == 1  # type: ignore[attr-defined]
    assert (gated.texts_scored, gated.encoder_texts) == (6, 2)


def test_scorer_rejects_mismatched_members_and_bad_temperature() -> None:
    with pytest.raises(ValueError, match="temperature must be positive"):
        EnsembleScorer(FakeScorer(ENCODER), FakeScorer(MEMBER), spec(0.9), temperature=0.0)
    two = FakeScorer({t: [0.0, 1.0] for t in TEXTS})
    with pytest.raises(ValueError, match="disagree on the label count"):
        EnsembleScorer(FakeScorer(ENCODER), two, spec(0.9), temperature=1.0)


def test_gate_off_scores_every_row_with_both_members() -> None:
    plain = scorer(gate=None)
    out = plain.logits(TEXTS)
    full = combine(
        np.array([ENCODER[t] for t in TEXTS]), np.array([MEMBER[t] for t in TEXTS]), spec()
    )
    assert np.allclose(out, full)
    assert plain._encoder.batches == [TEXTS]  # type: ignore[attr-defined]
    assert plain.encoder_texts == plain.texts_scored == 4


def test_ensemble_json_without_a_gate_loads_with_the_gate_off() -> None:
    old = (
        '{"member": "tfidf", "encoder_weight": 0.45, "encoder_temperature": 1.1, '
        '"member_temperature": 0.6}'
    )
    loaded = EnsembleSpec.model_validate_json(old)
    assert loaded.gate_threshold is None and loaded.gate_target == "none"
    with pytest.raises(ValidationError):
        EnsembleSpec.model_validate({**spec().model_dump(), "gate_threshold": 1.5})


def manifest(temperature: float, abstain_threshold: float) -> Manifest:
    return Manifest(
        format_version=1,
        kind="ensemble",
        runtime="onnx",
        labels=LABELS,
        out_of_scope_label="out_of_scope",
        temperature=temperature,
        abstain_threshold=abstain_threshold,
        data_sha256="0" * 64,
        validation="test",
        train_examples=0,
        created_at="2025-01-01T00:00:00+00:00",
        files={},
    )


def test_router_reports_the_member_probability_for_gated_rows_and_abstains_on_oos() -> None:
    router = LoadedRouter(Path("x"), manifest(0.8, 0.5), scorer(gate=0.9, temperature=0.8))
    probs = router.probabilities(TEXTS)
    assert np.allclose(probs[[0, 2]], member_calibrated(["sure", "oos"]))
    sure, unsure, oos, flat = router.predict(TEXTS)
    assert (sure.label, sure.abstained) == ("billing", False)
    assert sure.probability == pytest.approx(0.99505, abs=1e-4)
    assert (oos.label, oos.abstained) == ("out_of_scope", True)  # confident member, still abstains
    assert unsure.label == "code"  # the encoder overrules the unsure member
    assert flat.label == "billing"


def test_quick_answers_are_the_gated_answers_and_never_run_the_encoder() -> None:
    """`quick_logits`/`predict_quick` (the in-ingress router's inline path): exactly `logits`'
    and `predict`'s answers when the gate answers every text; None, with nothing counted and
    no encoder call, when one text needs the encoder or there is no gate."""
    gated = scorer(gate=0.9, temperature=0.8)
    encoder = gated._encoder
    quick = gated.quick_logits(["sure", "oos"])
    assert quick is not None and np.array_equal(quick, gated.logits(["sure", "oos"]))
    assert (gated.texts_scored, gated.encoder_texts) == (4, 0)  # 2 quick + 2 full
    assert gated.quick_logits(["sure", "unsure"]) is None
    assert gated.texts_scored == 4 and encoder.batches == []  # type: ignore[attr-defined]
    assert scorer(gate=None).quick_logits(["sure"]) is None

    router = LoadedRouter(Path("x"), manifest(0.8, 0.5), scorer(gate=0.9, temperature=0.8))
    assert router.predict_quick(["sure", "oos"]) == router.predict(["sure", "oos"])
    assert router.predict_quick(["unsure"]) is None and router.predict_quick([]) is None
    plain = LoadedRouter(Path("x"), manifest(0.8, 0.5), FakeScorer(MEMBER))  # type: ignore[arg-type]
    assert plain.predict_quick(["sure"]) is None  # no quick_logits: always the full path
    with pytest.raises(TypeError):
        router.predict_quick("sure")


def test_fit_gate_matches_the_full_ensemble_on_the_required_share() -> None:
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 3, 400)
    encoder = np.eye(3)[targets] * 3.0 + rng.normal(0, 1.0, (400, 3))
    member = np.eye(3)[targets] * rng.uniform(0, 3, (400, 1)) + rng.normal(0, 1.0, (400, 3))
    base = spec(weight=0.5)
    kwargs = {"abstain_target": "abstain_rate<=0.05", "gate_target": "agreement>=0.98"}
    gated, stats = fit_gate(base, encoder, member, targets, 2, **kwargs)
    assert gated.gate_threshold is not None and gated.gate_target == "agreement>=0.98"
    assert stats["threshold"] == gated.gate_threshold
    assert stats["holdout_agreement"] >= 0.98 and stats["holdout_abstain_agreement"] >= 0.98
    assert 0.0 < stats["holdout_encoder_fraction"] < 1.0
    # the next lower candidate breaks the target: the chosen gate is the cheapest passing one
    confidence = np.exp(log_softmax(member, base.member_temperature).max(axis=1))
    lower = float(confidence[confidence < gated.gate_threshold].max())
    _, lower_stats = fit_gate(
        base, encoder, member, targets, 2, **{**kwargs, "gate_target": f"fixed={lower!r}"}
    )
    assert min(lower_stats["holdout_agreement"], lower_stats["holdout_abstain_agreement"]) < 0.98
    assert lower_stats["holdout_encoder_fraction"] < stats["holdout_encoder_fraction"]
    strict, strict_stats = fit_gate(
        base, encoder, member, targets, 2, **{**kwargs, "gate_target": "agreement>=1"}
    )
    assert strict.gate_threshold is None or strict.gate_threshold >= gated.gate_threshold
    assert strict_stats["holdout_agreement"] == 1.0
    off, none_stats = fit_gate(
        base, encoder, member, targets, 2, **{**kwargs, "gate_target": "none"}
    )
    assert off == base and none_stats == {}


def test_cli_rejects_a_malformed_gate_before_loading_anything(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from orchestrator.cli.router import router as router_cli

    missing = str(tmp_path / "missing")
    args = ["ensemble", "--encoder", missing, "--member", missing, "--data", missing]
    result = CliRunner().invoke(router_cli, [*args, "--out", missing, "--gate", "agreement>0.9"])
    assert result.exit_code == 2
    assert "Invalid value for '--gate'" in result.output and "not a directory" not in result.output
    train = ["train", "--data", missing, "--out", missing, "--ensemble-gate", "fixed=2"]
    result = CliRunner().invoke(router_cli, train)
    assert result.exit_code == 2 and "values must be in [0, 1]" in result.output


def test_cli_train_passes_threads_and_rejects_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    import router_training.train as train_module
    from orchestrator.cli.router import router as router_cli

    seen: dict[str, Any] = {}

    def capture(data: Any, out: Any, **options: Any) -> None:
        seen.update(options)
        raise ValueError("stop here")

    monkeypatch.setattr(train_module, "train_router", capture)
    base = ["train", "--data", str(tmp_path / "d.jsonl"), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(router_cli, [*base, "--threads", "2"])
    assert seen["threads"] == 2 and "stop here" in result.output
    result = CliRunner().invoke(router_cli, [*base, "--threads", "0"])
    assert result.exit_code == 2 and "--threads" in result.output
