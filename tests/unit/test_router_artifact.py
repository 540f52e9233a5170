"""The router artifact: train (TF-IDF, seconds), load, predict, and fail early when corrupt."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from router_training.artifact import ArtifactError, RoutePrediction, load_router
from router_training.samples import DOMAINS_SAMPLE
from router_training.train import train_router


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("router") / "tfidf"
    report = train_router(DOMAINS_SAMPLE, out, kind="tfidf", progress=False)
    assert report.labels == ["code", "general", "legal", "medical"]
    assert "holding out" in report.validation
    return out


@pytest.fixture
def copy(artifact: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(artifact, target)
    return target


def edit_manifest(path: Path, **changes: object) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(changes)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_layout_and_manifest(artifact: Path) -> None:
    names = {p.name for p in artifact.iterdir()}
    assert {"manifest.json", "README.md", "tfidf.json", "tfidf.npz"} <= names
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["kind"] == "tfidf"
    assert len(manifest["data_sha256"]) == 64
    assert 0 <= manifest["abstain_threshold"] <= 1
    assert manifest["temperature"] > 0
    assert manifest["metrics"]["accuracy"] > 0.9
    card = (artifact / "README.md").read_text()
    assert manifest["data_sha256"] in card
    assert "abstain threshold" in card


def test_predict_returns_calibrated_route_predictions(artifact: Path) -> None:
    router = load_router(artifact)
    assert router.labels == ["code", "general", "legal", "medical"]
    assert len(router.version) == 12
    texts = [
        "Can I sue my landlord for keeping my security deposit in Texas?",
        "What are the side effects of metformin?",
        "How do I reverse a linked list in Python?",
        "What's a good recipe for banana bread?",
    ]
    predictions = router.predict(texts)
    assert [p.label for p in predictions] == ["legal", "medical", "code", "general"]
    for p in predictions:
        assert isinstance(p, RoutePrediction)
        assert 0.25 < p.probability <= 1.0
        assert p.runner_up is not None and p.runner_up != p.label
        assert p.runner_up_probability <= p.probability
        assert p.route == (None if p.abstained else p.label)
    assert router.predict([]) == []
    with pytest.raises(TypeError):
        router.predict("a single string")  # type: ignore[arg-type]


def test_version_is_stable_and_tracks_calibration(copy: Path, artifact: Path) -> None:
    assert load_router(copy).version == load_router(artifact).version
    edit_manifest(copy, abstain_threshold=1.0)
    changed = load_router(copy)
    assert changed.version != load_router(artifact).version
    assert all(p.abstained for p in changed.predict(["how do I sue my landlord"]))


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda p: (p / "tfidf.npz").unlink(), "tfidf.npz is missing"),
        (lambda p: (p / "manifest.json").unlink(), "manifest.json is missing"),
        (lambda p: (p / "README.md").unlink(), "README.md is missing"),
        (lambda p: (p / "tfidf.json").write_text("{}"), "does not match its SHA-256"),
        (lambda p: (p / "manifest.json").write_text("{not json"), "not valid JSON"),
        (lambda p: edit_manifest(p, format_version=99), "format_version 99"),
        (lambda p: edit_manifest(p, labels=["a", "b"]), "outputs but the manifest lists 2"),
        (lambda p: edit_manifest(p, labels=["a", "a", "b", "c"]), "not unique"),
        (lambda p: edit_manifest(p, temperature=-1), "temperature"),
        (lambda p: edit_manifest(p, files={}), "needs tfidf.json"),
        (lambda p: edit_manifest(p, out_of_scope_label="oos"), "out_of_scope_label"),
    ],
)
def test_corrupt_artifact_fails_at_load(copy: Path, damage: object, words: str) -> None:
    damage(copy)  # type: ignore[operator]
    with pytest.raises(ArtifactError) as caught:
        load_router(copy)
    assert str(copy) in str(caught.value)
    assert words in str(caught.value)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a directory"):
        load_router(tmp_path / "missing")


def test_retraining_replaces_an_artifact_but_not_other_directories(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="refusing"):
        train_router(DOMAINS_SAMPLE, other, kind="tfidf", progress=False)
    assert (other / "keep.txt").read_text() == "mine"


def test_single_query_fast_path_matches_the_batch_path(artifact: Path) -> None:
    import numpy as np

    router = load_router(artifact)
    texts = ["How do I sue my landlord?", "", "zzzz qqq", "Quiz me on black holes."]
    batch = router.probabilities(texts)
    single = np.concatenate([router.probabilities([text]) for text in texts])
    assert np.allclose(batch, single, atol=1e-5)
