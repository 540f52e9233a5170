"""Train, evaluate and export the query router; the router artifact format.

Public names (imported lazily, so importing the package loads nothing heavy)::

    from router_training import load_router, train_router, RoutePrediction, ArtifactError
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "DOMAINS_SAMPLE",
    "ArtifactError",
    "DataError",
    "LoadedRouter",
    "RoutePrediction",
    "TrainReport",
    "compose_ensemble",
    "evaluate_router",
    "load_router",
    "read_labelled",
    "train_router",
]

_HOME = {
    "ArtifactError": "router_training.artifact",
    "LoadedRouter": "router_training.artifact",
    "RoutePrediction": "router_training.artifact",
    "load_router": "router_training.artifact",
    "DataError": "router_training.data",
    "read_labelled": "router_training.data",
    "TrainReport": "router_training.train",
    "train_router": "router_training.train",
    "evaluate_router": "router_training.evaluate",
    "compose_ensemble": "router_training.compose",
    "DOMAINS_SAMPLE": "router_training.samples",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'router_training' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
