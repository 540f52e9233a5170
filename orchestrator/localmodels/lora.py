"""The project's LoRA adapters, shipped in `adapters/<domain>/` beside this module, installed
into `<state_dir>/models/adapters/` for the small model.

They were trained on the CPU with `adapter_training` (its `reproduce` command and seeds are in
each adapter's `card.json` and in `adapters/RESULTS.md`). Training all three takes about
twenty minutes here, too long for every fresh machine's first `make serve`, so the build
installs these files instead; a test retrains a short run to show the recipe still works.
"""

from __future__ import annotations

import json
import logging
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from .fetch import ModelSourceError, sha256_file
from .paths import ADAPTER_FILES, ModelPaths, read_json

ADAPTER_DOMAINS = ("legal", "medical", "code")

logger = logging.getLogger(__name__)


def shipped_adapter_dir(domain: str) -> Path:
    return Path(str(resources.files("orchestrator.localmodels").joinpath("adapters", domain)))


def install_adapters(paths: ModelPaths, small: dict[str, Any]) -> dict[str, Any]:
    """Copy every shipped adapter next to the small model; what the manifest records."""
    base_sha = small.get("files_sha256", {}).get("model.safetensors")
    return {domain: _install(domain, paths, base_sha) for domain in ADAPTER_DOMAINS}


def _install(domain: str, paths: ModelPaths, base_sha: str | None) -> dict[str, Any]:
    source, target = shipped_adapter_dir(domain), paths.adapter(domain)
    missing = [name for name in ADAPTER_FILES if not (source / name).is_file()]
    if missing:
        raise ModelSourceError(
            f"shipped adapter {domain!r}: {', '.join(missing)} missing in {source}"
        )
    tmp = target.with_name(f"{domain}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copyfile(source / "adapter_model.safetensors", tmp / "adapter_model.safetensors")
    config = json.loads((source / "adapter_config.json").read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = str(paths.small.resolve())
    (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    card = read_json(source / "card.json") or {}
    if (source / "card.json").is_file():
        shutil.copyfile(source / "card.json", tmp / "card.json")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return _adapter_record(domain, target, card, base_sha)


def _adapter_record(
    domain: str, target: Path, card: dict[str, Any], base_sha: str | None
) -> dict[str, Any]:
    trained_on = card.get("base_model_sha256")
    same_base = trained_on is not None and trained_on == base_sha
    if not same_base:
        logger.warning(
            "adapter %s was trained on another build of the small model (sha256 %s, serving %s):"
            " it loads, but retrain it on this base for its measured gains",
            domain, trained_on, base_sha,
        )  # fmt: skip
    return {
        "path": f"adapters/{domain}",
        "sha256": sha256_file(target / "adapter_model.safetensors"),
        "rank": json.loads((target / "adapter_config.json").read_text())["r"],
        "trained_on_base_sha256": trained_on,
        "same_base": same_base,
        "heldout": card.get("heldout", card.get("heldout_loss")),
    }
