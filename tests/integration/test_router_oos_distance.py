"""The ensemble's embedding-distance detector end to end, with a tiny local encoder: trained
and calibrated on the hold-out, saved, loaded, and applied by the served scorer exactly as
during training (flagged rows abstain)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from router_training.artifact import load_router
from router_training.distance import DISTANCE_FILE, DistanceDetector
from router_training.ensemble import combine, ensemble_evidence
from router_training.samples import DOMAINS_SAMPLE
from router_training.train import train_router

pytest_plugins = ["tests.integration.router_encoders"]


@pytest.fixture(scope="module")
def with_oos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample with its `general` queries as the out-of-scope label."""
    rows = [json.loads(line) for line in DOMAINS_SAMPLE.read_text().splitlines()]
    path = tmp_path_factory.mktemp("data") / "oos.jsonl"
    for row in rows:
        row["label"] = "out_of_scope" if row["label"] == "general" else row["label"]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


def test_distance_detector_is_saved_and_applied_when_serving(
    tiny_encoder: Path, with_oos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "router"
    report = train_router(
        with_oos, out, kind="ensemble", base_model=tiny_encoder, epochs=1, max_length=24,
        onnx_optimization="none", ensemble_gate="none", oos_distance_rate=0.05, progress=False,
    )  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    assert DISTANCE_FILE in manifest["files"]
    info = manifest["params"]["oos_distance"]
    assert info["flag_rate"] == 0.05 and 0.0 < info["holdout_flagged"] < 0.5
    assert manifest["abstain_target"] == "none"  # the detector's rule replaces the threshold
    assert report.metrics["oos_recall"] is not None
    router = load_router(out)
    texts = [json.loads(line)["text"] for line in with_oos.read_text().splitlines()][:200]
    encoder = router._scorer._encoder  # type: ignore[attr-defined]
    logits, pooled = encoder.logits_and_pooled(texts)
    member = router._scorer._member.logits(texts)  # type: ignore[attr-defined]
    fused = combine(logits, member, router._scorer.spec)  # type: ignore[attr-defined]
    flags = DistanceDetector.load(out).flags(
        pooled, ensemble_evidence(fused, router.labels.index("out_of_scope"))
    )
    predictions = router.predict(texts)
    assert flags.any()
    for prediction, flagged in zip(predictions, flags, strict=True):
        if flagged:
            assert prediction.abstained and prediction.label == "out_of_scope"
    abstained = np.array([p.abstained for p in predictions])
    assert abstained[flags].all()


def test_encoder_time_limit_stops_after_one_validation(tiny_encoder: Path, tmp_path: Path) -> None:
    report = train_router(
        DOMAINS_SAMPLE, tmp_path / "r", kind="bert", base_model=tiny_encoder, epochs=3,
        max_length=24, encoder_time_limit_s=0.001, progress=False,
    )  # fmt: skip
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["params"]["epochs_run"] == 1  # stopped in epoch 1, validated once
    assert manifest["params"]["best_epoch"] < 1.0
    assert report.metrics["accuracy"] is not None


def test_finer_labels_train_a_second_head_that_the_artifact_drops(
    tiny_encoder: Path, tmp_path: Path
) -> None:
    rows = [json.loads(line) for line in DOMAINS_SAMPLE.read_text().splitlines()]
    for index, row in enumerate(rows):
        row["label"] = "out_of_scope" if row["label"] == "general" else row["label"]
        row["intent"] = f"{row['label']}-{index % 3}"  # three finer classes per label
    data = tmp_path / "intents.jsonl"
    data.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    out = tmp_path / "router"
    train_router(
        data, out, kind="ensemble", base_model=tiny_encoder, epochs=1, max_length=24,
        onnx_optimization="none", ensemble_gate="none", oos_distance_rate=0.05, progress=False,
    )  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    n_labels = len(manifest["labels"])
    assert manifest["params"]["fine_labels"] == {"field": "intent", "classes": 3 * n_labels}
    # the detector keeps one mean per in-scope finer class
    assert DistanceDetector.load(out).means.shape[0] == 3 * (n_labels - 1)
    router = load_router(out)
    logits = router._scorer._encoder.logits(["a question"])  # type: ignore[attr-defined]
    assert logits.shape == (1, n_labels)  # the finer head is not in the served graph
