"""Where the embedded default's models live under the state directory. Pure and light (no
torch): the up-to-date check runs on every `spillway models build`."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


@dataclass(frozen=True)
class ModelPaths:
    """`<state_dir>/models/`: small/, large/, adapters/<domain>/, manifest.json."""

    root: Path

    def model(self, name: str) -> Path:
        return self.root / name

    @property
    def small(self) -> Path:
        return self.model("small")

    @property
    def large(self) -> Path:
        return self.model("large")

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    def adapter(self, domain: str) -> Path:
        return self.root / "adapters" / domain

    def missing_adapter_files(self, domains: tuple[str, ...]) -> list[Path]:
        expected = [self.adapter(d) / name for d in domains for name in ADAPTER_FILES]
        return [path for path in expected if not path.is_file()]


def model_paths(state_dir: Path) -> ModelPaths:
    """The model paths for a state dir (default `.spillway`); nothing is created or checked."""
    return ModelPaths(root=Path(state_dir) / "models")


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`, or None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Serialize builds of one state directory across processes (an flock on ``lock_path``)."""
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
