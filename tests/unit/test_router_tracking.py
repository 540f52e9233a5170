"""`--mlflow`: a train run and an eval run logged to a local directory, offline."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli.router import router
from router_training.samples import DOMAINS_SAMPLE


def test_train_and_eval_log_to_a_local_mlflow_directory(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow", reason="mlflow is optional: pip install mlflow-skinny")
    store, out = tmp_path / "mlruns", tmp_path / "router"
    runner = CliRunner()
    common = ["--mlflow", str(store)]
    trained = runner.invoke(
        router,
        ["train", "--data", str(DOMAINS_SAMPLE), "--out", str(out), "--baseline", "tfidf", *common],
    )
    assert trained.exit_code == 0, trained.output
    evaluated = runner.invoke(
        router,
        ["eval", "--model", str(out), "--data", str(DOMAINS_SAMPLE), "--no-speed", *common],
    )
    assert evaluated.exit_code == 0, evaluated.output

    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["spillway-router"], output_format="list")
    stages = sorted(run.data.tags["stage"] for run in runs)
    assert stages == ["eval", "train"]
    train_run = next(run for run in runs if run.data.tags["stage"] == "train")
    assert train_run.data.params["kind"] == "tfidf"
    assert "macro_f1" in train_run.data.metrics
    assert any((store / "artifacts").rglob("manifest.json"))
    assert not Path("mlruns").exists()  # nothing written to the working directory
