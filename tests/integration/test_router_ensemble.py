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
    args += ["--max-length", "24", "--onnx-optimization", "int8", "--json"]
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

    from orchestrator.router import RouterDeployment

    # batches of one: int8 activations are quantized per batch, so compare like with like
    deployment = RouterDeployment(str(ensemble), max_batch_size=1)

    async def run() -> list[str | None]:
        results = await asyncio.gather(*(deployment.route(q) for q in QUERIES))
        return [r.label for r in results]

    labels = asyncio.run(run())
    router = load_router(ensemble)
    expected = [router.predict([q])[0].label for q in QUERIES]
    assert labels == expected and deployment.version == router.version
