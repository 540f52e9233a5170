"""The ensemble kind and the fused/int8 ONNX encoder graph, with a tiny local encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from orchestrator.cli.router import router as router_cli
from router_training.artifact import ArtifactError, load_router
from router_training.ensemble import combine
from router_training.samples import DOMAINS_SAMPLE

pytest_plugins = ["tests.integration.router_encoders"]

QUERIES = [
    "How do I parse a CSV file in Python?",
    "a rash on my arm",
    "can my landlord keep the deposit after I move out",
    "what is the capital of France",
]

MIXED = [
    "hello",
    "thanks, that is all",
    "my landlord asked me to fix his Python code",
    "is a rash covered by my rental deposit",
    "tell me a joke",
    "what time is it",
]


def sample_rows(per_label: int) -> tuple[list[str], list[str]]:
    """The first ``per_label`` training rows of each label (the models must fit these)."""
    texts, labels, seen = [], [], {}
    for line in DOMAINS_SAMPLE.read_text().splitlines():
        row = json.loads(line)
        if seen.get(row["label"], 0) < per_label:
            seen[row["label"]] = seen.get(row["label"], 0) + 1
            texts.append(row["text"])
            labels.append(row["label"])
    return texts, labels


@pytest.fixture(scope="module")
def ensemble(tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ensemble") / "router"
    args = ["train", "--data", str(DOMAINS_SAMPLE), "--out", str(out), "--no-progress"]
    args += ["--kind", "ensemble", "--base-model", str(tiny_encoder), "--epochs", "1"]
    args += ["--max-length", "24", "--onnx-optimization", "int8", "--ensemble-gate", "none"]
    args += ["--json"]
    result = CliRunner().invoke(router_cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["kind"] == "ensemble"
    return out


def test_ensemble_artifact_layout_and_manifest(ensemble: Path) -> None:
    names = {p.name for p in ensemble.iterdir()}
    assert {"model.onnx", "model.safetensors", "tfidf.json", "ensemble.json"} <= names
    manifest = load_router(ensemble).manifest
    assert (manifest.kind, manifest.runtime, manifest.max_length) == ("ensemble", "onnx", 24)
    assert manifest.params["onnx_optimization"] == "int8"
    fused = manifest.params["onnx_fused_operators"]
    assert fused["Attention"] == 1 and fused["SkipLayerNormalization"] == 2
    spec = json.loads((ensemble / "ensemble.json").read_text())
    assert spec["member"] == "tfidf" and 0.0 <= spec["encoder_weight"] <= 1.0
    assert manifest.params["ensemble"] == spec
    card = (ensemble / "README.md").read_text()
    assert "- ensemble: encoder weight" in card and "- encoder ONNX graph: int8" in card


def test_int8_graph_has_quantized_matmuls(ensemble: Path) -> None:
    import onnx

    ops = {node.op_type for node in onnx.load(str(ensemble / "model.onnx")).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger", "QAttention"} <= ops
    assert "QEmbedLayerNormalization" in ops and "MatMul" not in ops


def test_ensemble_scores_are_the_weighted_member_scores(ensemble: Path) -> None:
    router = load_router(ensemble)
    scorer = router._scorer
    expected = combine(
        scorer._encoder.logits(QUERIES),  # type: ignore[attr-defined]
        scorer._member.logits(QUERIES),  # type: ignore[attr-defined]
        scorer.spec,  # type: ignore[attr-defined]
    )
    assert np.allclose(scorer.logits(QUERIES), expected)
    single = np.concatenate([scorer.logits([q]) for q in QUERIES])
    assert np.allclose(single, expected, atol=1e-4)
    texts, truth = sample_rows(5)
    predicted = [p.label for p in router.predict(texts)]
    assert np.mean(np.array(predicted) == np.array(truth)) >= 0.9, (predicted, truth)


def test_ensemble_needs_its_spec_file(ensemble: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(ensemble, copy)
    (copy / "ensemble.json").unlink()
    with pytest.raises(ArtifactError, match=r"ensemble\.json is missing"):
        load_router(copy)


@pytest.fixture(scope="module")
def members(tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from router_training.train import train_router

    root = tmp_path_factory.mktemp("members")
    options = {"base_model": tiny_encoder, "epochs": 1, "max_length": 24, "progress": False}
    train_router(DOMAINS_SAMPLE, root / "bert", kind="bert", **options)
    train_router(DOMAINS_SAMPLE, root / "tfidf", kind="tfidf", progress=False)
    return root / "bert", root / "tfidf"


def test_compose_an_ensemble_from_trained_routers(
    members: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "composed"
    args = ["ensemble", "--encoder", str(members[0]), "--member", str(members[1])]
    args += ["--data", str(DOMAINS_SAMPLE), "--out", str(out), "--onnx-optimization", "fused"]
    args += ["--ensemble-weight", "0.5", "--abstain-target", "fixed=0.4", "--json"]
    result = CliRunner().invoke(router_cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["kind"] == "ensemble" and report["metrics"]["examples"] == 160
    router = load_router(out)
    assert router.manifest.abstain_threshold == 0.4
    assert router.manifest.params["onnx_optimization"] == "fused"
    assert json.loads((out / "ensemble.json").read_text())["encoder_weight"] == 0.5
    assert [p.label for p in router.predict(QUERIES[:1])] == ["code"]


@pytest.fixture(scope="module")
def gated(members: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gated") / "router"
    args = ["ensemble", "--encoder", str(members[0]), "--member", str(members[1])]
    args += ["--data", str(DOMAINS_SAMPLE), "--out", str(out), "--onnx-optimization", "fused"]
    args += ["--abstain-target", "fixed=0.4", "--json"]  # the default gate: agreement>=0.995
    result = CliRunner().invoke(router_cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def test_a_gated_ensemble_scores_only_unsure_queries_with_the_encoder(gated: Path) -> None:
    from router_training.ensemble import log_softmax

    router = load_router(gated)
    spec = json.loads((gated / "ensemble.json").read_text())
    stats = router.manifest.params["gate"]
    assert spec["gate_target"] == stats["target"] == "agreement>=0.995"
    assert spec["gate_threshold"] == stats["threshold"] and stats["holdout_agreement"] >= 0.995
    assert "- gate (agreement>=0.995)" in (gated / "README.md").read_text()
    scorer = router._scorer
    # training rows are all above the gate; mixed and off-topic queries are not
    texts = [*sample_rows(2)[0], *QUERIES, *MIXED]
    member = scorer._member.logits(texts)  # type: ignore[attr-defined]
    member_log_probs = log_softmax(member, spec["member_temperature"])
    below = np.exp(member_log_probs.max(axis=1)) < spec["gate_threshold"]
    assert 0 < below.sum() < len(texts)  # both paths are exercised
    before = scorer.encoder_texts  # type: ignore[attr-defined]
    out = scorer.logits(texts)
    assert scorer.encoder_texts - before == below.sum()  # type: ignore[attr-defined]
    encoder = scorer._encoder.logits([t for t, b in zip(texts, below, strict=True) if b])  # type: ignore[attr-defined]
    assert np.allclose(out[below], combine(encoder, member[below], scorer.spec), atol=1e-5)  # type: ignore[attr-defined]
    temperature = router.manifest.temperature
    assert np.allclose(out[~below], temperature * member_log_probs[~below])
    probs = router.probabilities(texts)
    assert np.allclose(probs[~below], np.exp(member_log_probs[~below]))


def test_eval_reports_the_share_of_queries_the_encoder_scored(gated: Path) -> None:
    from router_training.data import read_labelled
    from router_training.ensemble import log_softmax
    from router_training.evaluate import evaluate_router

    metrics = evaluate_router(gated, DOMAINS_SAMPLE, speed=False)
    router = load_router(gated)
    spec = router._scorer.spec  # type: ignore[attr-defined]
    texts = read_labelled(DOMAINS_SAMPLE).texts
    member = router._scorer._member.logits(texts)  # type: ignore[attr-defined]
    confidence = np.exp(log_softmax(member, spec.member_temperature).max(axis=1))
    assert metrics["encoder_fraction"] == np.mean(confidence < spec.gate_threshold)


def test_an_ensemble_json_from_before_the_gate_loads_with_the_gate_off(
    gated: Path, tmp_path: Path
) -> None:
    import hashlib
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(gated, copy)
    spec = json.loads((copy / "ensemble.json").read_text())
    old = {k: v for k, v in spec.items() if not k.startswith("gate_")}
    (copy / "ensemble.json").write_text(json.dumps(old))
    manifest = json.loads((copy / "manifest.json").read_text())
    digest = hashlib.sha256((copy / "ensemble.json").read_bytes()).hexdigest()
    manifest["files"]["ensemble.json"] = digest
    (copy / "manifest.json").write_text(json.dumps(manifest))
    router = load_router(copy)
    scorer = router._scorer
    assert scorer.spec.gate_threshold is None  # type: ignore[attr-defined]
    router.predict(QUERIES)
    assert scorer.encoder_texts == scorer.texts_scored  # type: ignore[attr-defined]
    expected = combine(
        scorer._encoder.logits(QUERIES),  # type: ignore[attr-defined]
        scorer._member.logits(QUERIES),  # type: ignore[attr-defined]
        scorer.spec,  # type: ignore[attr-defined]
    )
    assert np.allclose(scorer.logits(QUERIES), expected)


def test_the_router_deployment_serves_a_gated_ensemble(gated: Path) -> None:
    import asyncio

    from orchestrator.backends.router import RouterDeployment

    deployment = RouterDeployment(str(gated), max_batch_size=8)

    async def run() -> list[tuple[str | None, float]]:
        results = await asyncio.gather(*(deployment.route(q) for q in QUERIES))
        return [(r.label, r.probability) for r in results]

    served = asyncio.run(run())
    expected = [(p.label, p.probability) for p in load_router(gated).predict(QUERIES)]
    assert [label for label, _ in served] == [label for label, _ in expected]
    assert np.allclose([p for _, p in served], [p for _, p in expected], atol=1e-4)


def test_compose_refuses_routers_trained_on_other_data(
    members: tuple[Path, Path], tmp_path: Path
) -> None:
    other = tmp_path / "other.jsonl"
    other.write_text(DOMAINS_SAMPLE.read_text().replace("Python", "python"))
    args = ["ensemble", "--encoder", str(members[0]), "--member", str(members[1])]
    args += ["--data", str(other), "--out", str(tmp_path / "x")]
    result = CliRunner().invoke(router_cli, args)
    assert result.exit_code != 0 and "not trained on this --data file" in result.output
    swapped = ["ensemble", "--encoder", str(members[1]), "--member", str(members[0])]
    swapped += ["--data", str(DOMAINS_SAMPLE), "--out", str(tmp_path / "y")]
    result = CliRunner().invoke(router_cli, swapped)
    assert result.exit_code != 0 and "need a bert --encoder" in result.output


def test_the_router_deployment_serves_an_ensemble(ensemble: Path) -> None:
    import asyncio

    from orchestrator.backends.router import RouterDeployment

    # batches of one: int8 activations are quantized per batch, so compare like with like
    deployment = RouterDeployment(str(ensemble), max_batch_size=1)

    async def run() -> list[str | None]:
        results = await asyncio.gather(*(deployment.route(q) for q in QUERIES))
        return [r.label for r in results]

    labels = asyncio.run(run())
    router = load_router(ensemble)
    expected = [router.predict([q])[0].label for q in QUERIES]
    assert labels == expected and deployment.version == router.version
