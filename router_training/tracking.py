"""Optional MLflow logging of router training and evaluation runs (MLflow imported lazily)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["log_to_mlflow"]

_EXPERIMENT = "spillway-router"


def log_to_mlflow(uri: str, stage: str, artifact: Path | str, metrics: dict[str, Any]) -> str:
    """Log the artifact's manifest params, the numeric ``metrics`` and (for training) the
    artifact directory as one MLflow run in experiment ``spillway-router``; return its run id.

    ``uri`` is a tracking URI (``http://...``, ``sqlite:///...``) or a local directory
    (``file:///tmp/mlruns`` or ``/tmp/mlruns``), which becomes ``<dir>/mlflow.db`` with
    artifacts in ``<dir>/artifacts``: MLflow 3 no longer writes plain file stores, and this
    keeps everything offline and out of the current directory."""
    try:
        import mlflow
    except ImportError as error:
        raise RuntimeError(
            "--mlflow needs the mlflow package: `.venv/bin/pip install mlflow`"
        ) from error
    artifact = Path(artifact)
    manifest = json.loads((artifact / "manifest.json").read_text())
    tracking_uri, artifact_root = _resolve(uri)
    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(_EXPERIMENT) is None:
        mlflow.create_experiment(_EXPERIMENT, artifact_location=artifact_root)
    mlflow.set_experiment(_EXPERIMENT)
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


def _resolve(uri: str) -> tuple[str, str | None]:
    """(tracking URI, artifact root for a new experiment)."""
    if uri.startswith("file:"):
        uri = uri.removeprefix("file:").removeprefix("//")
    if "://" in uri:
        if uri.startswith("sqlite:///"):
            return uri, (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
        return uri, None
    directory = Path(uri).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'mlflow.db'}", (directory / "artifacts").as_uri()


def _version(artifact: Path) -> str:
    from router_training.manifest import read_manifest

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
