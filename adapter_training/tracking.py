"""Optional MLflow logging of adapter training and evaluation runs (MLflow imported lazily).

One run per command in experiment ``spillway-adapters``: the card's hyper-parameters as params,
the losses (per training step, and base against adapter) and the gate as metrics, and for
training the adapter directory as the run's artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["log_to_mlflow"]

_EXPERIMENT = "spillway-adapters"


def _resolve(uri: str) -> tuple[str, str | None]:
    """(tracking URI, artifact root): a plain directory becomes ``<dir>/mlflow.db`` with
    artifacts in ``<dir>/artifacts`` (MLflow 3 writes no plain file stores)."""
    if uri.startswith("file:"):
        uri = uri.removeprefix("file:").removeprefix("//")
    if "://" in uri:
        if uri.startswith("sqlite:///"):
            return uri, (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
        return uri, None
    directory = Path(uri).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'mlflow.db'}", (directory / "artifacts").as_uri()


def _train_metrics(card: dict[str, Any]) -> dict[str, float]:
    held, gate = card["heldout"], card.get("gate", {})
    metrics = {
        "base_val_loss": float(held["base_loss"]),
        "adapter_val_loss": float(held["adapter_loss"]),
        "steps": float(card["steps"]),
        "best_step": float(card["best_step"]),
        "tokens_per_second": float(card["tokens_per_second"] or 0.0),
    }
    if gate:
        metrics["gate_passed"] = float(bool(gate["passed"]))
    return metrics


def _eval_metrics(result: dict[str, Any]) -> dict[str, float]:
    metrics = {"gate_passed": float(bool(result["gate"]["passed"]))}
    for who in ("base", "adapter"):
        for name, value in result[who].items():
            metrics[f"{who}_{name}"] = float(value)
    return metrics


def log_to_mlflow(uri: str, stage: str, adapter_dir: str | Path, record: dict[str, Any]) -> str:
    """Log a training card (``stage="train"``) or an evaluation result (``"eval"``) as one
    MLflow run; returns its run id."""
    try:
        import mlflow
    except ImportError as error:
        raise RuntimeError(
            "--mlflow needs the mlflow package: `.venv/bin/pip install mlflow`"
        ) from error
    tracking_uri, artifact_root = _resolve(uri)
    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(_EXPERIMENT) is None:
        mlflow.create_experiment(_EXPERIMENT, artifact_location=artifact_root)
    mlflow.set_experiment(_EXPERIMENT)
    with mlflow.start_run(run_name=f"{stage}-{Path(adapter_dir).name}") as run:
        mlflow.set_tags({"stage": stage, "adapter_dir": str(Path(adapter_dir).resolve())})
        if stage == "train":
            mlflow.log_params({k: str(v)[:500] for k, v in record["hyperparameters"].items()})
            for row in record["train_loss"]:
                mlflow.log_metric("train_loss", row["loss"], step=int(row["step"]))
            mlflow.log_metrics(_train_metrics(record))
            mlflow.log_artifacts(str(adapter_dir), artifact_path="adapter")
        else:
            mlflow.log_metrics(_eval_metrics(record))
            mlflow.log_dict(record, "eval.json")
        return str(run.info.run_id)
