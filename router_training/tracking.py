"""Optional MLflow logging of router training and evaluation runs (MLflow imported lazily)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["log_to_mlflow"]


def log_to_mlflow(uri: str, stage: str, artifact: Path | str, metrics: dict[str, Any]) -> str:
    """Log the artifact's manifest params, the numeric ``metrics`` and (for training) the
    artifact directory as one MLflow run in experiment ``spillway-router``; return its run id.
    ``uri`` is a tracking URI, e.g. ``file:///tmp/mlruns`` (works offline)."""
    try:
        import mlflow
    except ImportError as error:
        raise RuntimeError(
            "--mlflow needs the mlflow package: `.venv/bin/pip install mlflow`"
        ) from error
    artifact = Path(artifact)
    manifest = json.loads((artifact / "manifest.json").read_text())
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("spillway-router")
    version = _version(artifact)
    with mlflow.start_run(run_name=f"{stage}-{version}") as run:
        mlflow.set_tags({"stage": stage, "artifact_version": version, "kind": manifest["kind"]})
        params = {**manifest.get("params", {}), "temperature": manifest["temperature"]}
        params["abstain_threshold"] = manifest["abstain_threshold"]
        params["labels"] = ",".join(manifest["labels"])
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics(_numeric(metrics))
        if stage == "train":
            mlflow.log_artifacts(str(artifact), artifact_path="router")
        else:
            mlflow.log_dict(metrics, "eval_metrics.json")
        return str(run.info.run_id)


def _version(artifact: Path) -> str:
    from router_training.artifact import read_manifest

    return read_manifest(artifact).version()


def _numeric(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            out[name] = float(value)
        elif isinstance(value, dict) and key == "per_label":
            for label, row in value.items():
                if isinstance(row, dict):
                    out.update(_numeric(row, f"{label}."))
    return out
