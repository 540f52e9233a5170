"""The hybrid kind (TF-IDF + static vectors distilled from an encoder) with a tiny local encoder
built here (no hub, no download), and the encoder ('bert') kind's artifact round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from router_training.artifact import ArtifactError, load_router
from router_training.samples import DOMAINS_SAMPLE
from router_training.train import train_router

pytest_plugins = ["tests.integration.router_encoders"]


def test_hybrid_artifact_round_trip(tiny_encoder: Path, tmp_path: Path) -> None:
    report = train_router(
        DOMAINS_SAMPLE, tmp_path / "h", kind="hybrid", base_model=tiny_encoder, progress=False
    )
    assert report.kind == "hybrid"
    names = {p.name for p in (tmp_path / "h").iterdir()}
    assert {"embed_vectors.npz", "embed_tokenizer.json", "tfidf.json"} <= names
    router = load_router(tmp_path / "h")
    predictions = router.predict(["How do I parse a CSV file in Python?", "a rash on my arm"])
    assert [p.label for p in predictions] == ["code", "medical"]
    vectors = router._scorer._embedder.embed(["hello", "a much longer query about contracts"])  # type: ignore[attr-defined]
    assert vectors.shape == (2, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)

    (tmp_path / "h" / "embed_vectors.npz").unlink()
    with pytest.raises(ArtifactError, match=r"embed_vectors\.npz is missing"):
        load_router(tmp_path / "h")


def test_encoder_fine_tune_from_a_local_base(tiny_encoder: Path, tmp_path: Path) -> None:
    report = train_router(
        DOMAINS_SAMPLE,
        tmp_path / "b",
        kind="bert",
        base_model=tiny_encoder,
        epochs=1,
        max_length=24,
        runtime="torch",
        progress=False,
    )
    manifest = load_router(tmp_path / "b").manifest
    assert manifest.kind == "bert" and manifest.runtime == "torch"
    assert manifest.pooling == "mean" and manifest.max_length == 24
    assert report.metrics["examples"] == 160  # 10% of the 1,600-query sample
    assert load_router(tmp_path / "b").predict(["hi"])[0].label in report.labels


def test_bert_tiny_from_scratch_is_repeatable_with_a_seed(tmp_path: Path) -> None:
    def train(name: str) -> str:
        return train_router(
            DOMAINS_SAMPLE, tmp_path / name, kind="bert", epochs=1, max_length=24, progress=False
        ).version

    assert train("a") == train("b")
