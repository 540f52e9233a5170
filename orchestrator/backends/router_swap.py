"""The checks a replacement router artifact passes before it is put in service (the admin
API's `PUT /v1/admin/router` and the Ingress user_config's `router_artifact_path`).

Loading (`load_router`: manifest, file hashes, a probe prediction) happens where the router
runs; this adds what only the service's config knows: every label the config maps to an
adapter must be one the new artifact can predict, else that adapter would silently get no
query (a difficulty scorer or another service's router given by mistake).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from orchestrator.config import SpillwayConfig, router_label_problems
from router_training.manifest import ArtifactError, read_manifest

__all__ = ["check_artifact_labels", "label_entry_problems", "missing_labels_error"]


def check_artifact_labels(config: SpillwayConfig, artifact_path: str) -> list[str]:
    """The artifact's labels, read from its manifest; raises ArtifactError naming the path and
    the config entries whose labels it lacks."""
    try:
        manifest = read_manifest(Path(artifact_path))
    except (OSError, ValueError) as error:  # a path the OS refuses (NUL byte, too long)
        raise ArtifactError(f"{artifact_path!r}: not a usable path ({error})") from None
    problems = router_label_problems(config, manifest.labels)
    if problems:
        raise missing_labels_error(artifact_path, manifest.labels, problems)
    return list(manifest.labels)


def label_entry_problems(entries: Sequence[tuple[str, str]], labels: Sequence[str]) -> list[str]:
    """The config entries (label, where) whose label is not among `labels` (for the Router
    deployment, which gets the entries instead of the whole config)."""
    known = set(labels)
    return [where for label, where in entries if label not in known]


def missing_labels_error(path: str, labels: Sequence[str], problems: list[str]) -> ArtifactError:
    return ArtifactError(
        f"{path}: its labels ({', '.join(labels)}) lack what the config routes to an adapter: "
        f"{', '.join(problems)}; that adapter would get no query (train the router on the same "
        "labels, or change the config first)"
    )
