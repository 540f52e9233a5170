"""`build_models`: the embedded default's real models under `<state_dir>/models/`.

    models/small/          Qwen2.5-Coder-0.5B-Instruct, bf16 (the 8B's stand-in, with LoRA)
    models/large/          Qwen2.5-Coder-1.5B-Instruct, bf16 (the 70B's stand-in)
    models/adapters/<d>/   the project's LoRA adapters legal, medical, code (PEFT)
    models/manifest.json   sources, licenses, hashes, sizes, times (written last)

Each model is converted into `<name>.tmp-<pid>/` and renamed into place with a stamp of the
source it came from, so an interrupted build resumes with what is done and never leaves a
directory that looks complete. A file lock serializes concurrent builds of one state dir.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .fetch import ModelSourceError
from .lora import ADAPTER_DOMAINS, install_adapters
from .paths import ModelPaths, exclusive_lock, model_paths, read_json
from .sources import DEFAULT_SOURCES, GGUFSource

BUILD_VERSION = "real-1"
"""Bump when the build changes what it writes; part of every stamp and of the manifest."""
STAMP = "spillway-source.json"
DEFAULT_SOURCE = "pypi"

__all__ = ["BUILD_VERSION", "DEFAULT_SOURCE", "ModelSourceError", "build_models", "up_to_date"]


def wanted_source(name: str, spec: str) -> dict[str, Any]:
    """What the stamp of model `name` must say for `spec` ('pypi', 'hf:ORG/NAME' or a path)."""
    if spec == DEFAULT_SOURCE:
        return {"build": BUILD_VERSION, **DEFAULT_SOURCES[name].describe()}
    if spec.startswith("hf:"):
        return {"build": BUILD_VERSION, "kind": "hf-cache", "model": spec.removeprefix("hf:")}
    return {"build": BUILD_VERSION, "kind": "directory", "model": str(Path(spec).resolve())}


def up_to_date(
    state_dir: Path, small: str = DEFAULT_SOURCE, large: str = DEFAULT_SOURCE
) -> dict[str, Any] | None:
    """The manifest when every model and adapter is in place for these sources, else None."""
    paths = model_paths(state_dir)
    manifest = read_json(paths.manifest)
    if manifest is None or manifest.get("build") != BUILD_VERSION:
        return None
    for name, spec in (("small", small), ("large", large)):
        if not _model_current(paths.model(name), wanted_source(name, spec)):
            return None
    if paths.missing_adapter_files(ADAPTER_DOMAINS):
        return None
    return manifest


def build_models(
    state_dir: Path,
    *,
    small: str = DEFAULT_SOURCE,
    large: str = DEFAULT_SOURCE,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Fetch, verify and convert the models and install the adapters; the manifest."""
    state_dir = Path(state_dir)
    if not force and (found := up_to_date(state_dir, small, large)):
        return found
    paths = model_paths(state_dir)
    paths.root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with exclusive_lock(state_dir / "models.lock"):
        models = {
            name: _ensure_model(name, spec, paths, state_dir / "cache" / "models", force, progress)
            for name, spec in (("small", small), ("large", large))
        }
        adapters = install_adapters(paths, models["small"])
        manifest = {
            "build": BUILD_VERSION,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "build_seconds": round(time.perf_counter() - started, 1),
            "models": models,
            "adapters": adapters,
        }
        paths.manifest.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _model_current(model_dir: Path, wanted: dict[str, Any]) -> bool:
    stamp = read_json(model_dir / STAMP)
    return stamp is not None and stamp.get("source") == wanted


def _ensure_model(
    name: str, spec: str, paths: ModelPaths, cache: Path, force: bool, progress: bool
) -> dict[str, Any]:
    """Model `name` converted from `spec` into place (kept when its stamp already matches)."""
    final, wanted = paths.model(name), wanted_source(name, spec)
    if not force and _model_current(final, wanted):
        return dict(read_json(final / STAMP) or {})
    from .convert import convert_model

    tmp = final.with_name(f"{name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    source_path = _materialize(name, spec, cache, progress)
    info = _converted(name, convert_model, source_path, tmp, progress)
    stamp = {"name": name, "source": wanted, **info}
    (tmp / STAMP).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    if spec == DEFAULT_SOURCE:
        source_path.unlink(missing_ok=True)  # the converted weights are what is served
    return stamp


def _materialize(name: str, spec: str, cache: Path, progress: bool) -> Path:
    """A local GGUF file or checkpoint directory for `spec`."""
    if spec == DEFAULT_SOURCE:
        from .fetch import fetch_gguf

        source: GGUFSource = DEFAULT_SOURCES[name]
        return fetch_gguf(source, cache, progress=progress)
    if spec.startswith("hf:"):
        from .convert import resolve_hf_source

        return resolve_hf_source(spec)
    path = Path(spec)
    if not path.exists():
        raise ModelSourceError(f"--{name}-source {spec}: no such file or directory")
    return path


def _converted(name: str, convert: Any, source: Path, out: Path, progress: bool) -> dict[str, Any]:
    from tqdm.auto import tqdm

    with tqdm(total=1, desc=f"convert {name} model", unit="model", disable=not progress) as bar:
        info: dict[str, Any] = convert(source, out)
        bar.update(1)
    return info
