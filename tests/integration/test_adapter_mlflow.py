"""`--mlflow`: a training card and an evaluation result logged as MLflow runs in a local
directory (sqlite tracking store), read back with MLflow's own client."""

from __future__ import annotations

from pathlib import Path

from adapter_training.tracking import log_to_mlflow

CARD = {
    "hyperparameters": {"rank": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj"]},
    "train_loss": [{"step": 1, "epoch": 0, "loss": 3.1}, {"step": 2, "epoch": 0, "loss": 2.9}],
    "heldout": {"base_loss": 3.5, "adapter_loss": 3.0},
    "gate": {"passed": True},
    "steps": 2,
    "best_step": 2,
    "tokens_per_second": 200.0,
}
EVAL = {
    "gate": {"passed": False},
    "base": {"loss": 3.5, "perplexity": 33.1},
    "adapter": {"loss": 3.45, "perplexity": 31.5, "exact_match": 0.5},
}


def test_train_and_eval_runs(tmp_path: Path) -> None:
    import mlflow

    adapter = tmp_path / "legal-v2"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}", encoding="utf-8")
    store = tmp_path / "mlruns"
    train_id = log_to_mlflow(str(store), "train", adapter, CARD)
    eval_id = log_to_mlflow(str(store), "eval", adapter, EVAL)
    client = mlflow.tracking.MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    trained = client.get_run(train_id).data
    assert trained.params["rank"] == "8" and trained.metrics["adapter_val_loss"] == 3.0
    assert trained.metrics["gate_passed"] == 1.0
    assert [m.value for m in client.get_metric_history(train_id, "train_loss")] == [3.1, 2.9]
    assert [a.path for a in client.list_artifacts(train_id)] == ["adapter"]
    evaluated = client.get_run(eval_id).data.metrics
    assert evaluated["adapter_exact_match"] == 0.5 and evaluated["gate_passed"] == 0.0
