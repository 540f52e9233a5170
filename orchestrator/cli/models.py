"""`spillway models build`: the local small/large models and domain LoRA adapters.

Heavy imports (torch, transformers, peft) happen only inside a build that has work to do, so an
up-to-date check answers in well under a second.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


@click.group()
def models() -> None:
    """Build the local models the embedded default config serves."""


@models.command()
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".spillway"),
    show_default=True,
    help="Project state directory; models go to STATE_DIR/models/.",
)
@click.option("--force", is_flag=True, help="Rebuild even if the models are up to date.")
@click.option("--no-progress", is_flag=True, help="Hide the per-stage progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON on stdout.")
def build(state_dir: Path, force: bool, no_progress: bool, as_json: bool) -> None:
    """Train the local models from the shipped corpus (legal, medical, code, general).

    \b
    Stages, each with a progress bar on stderr:
      tokenizer  byte-level BPE with a chat template (<|user|> ... </s> <|assistant|>)
      small      tiny Llama trained on all four domains (the model vLLM serves with LoRA)
      large      bigger Llama, trained longer (stands in for the 70B escalation model)
      adapters   LoRA adapters legal, medical, code on top of the small model
      router     the domain router, trained on router_training/samples/domains.jsonl

    \b
    Output under STATE_DIR/models/: small/, large/, adapters/<domain>/ and manifest.json,
    and the router artifact in STATE_DIR/router/
    (held-out losses, parameter counts, fingerprint, build time). The fingerprint hashes the
    corpus, the hyperparameters and the builder version: when it matches, nothing is rebuilt.
    A build is written to a temp dir and renamed into place, so an interrupted build never
    leaves a directory that looks complete. Takes 2-3 minutes on 2 CPU cores.
    """
    from orchestrator.localmodels.build import build_local_models, up_to_date

    manifest = None if force else up_to_date(state_dir)
    fresh = manifest is None
    if manifest is None:
        manifest = build_local_models(state_dir, force=force, progress=not no_progress)
    from orchestrator.localmodels.router import build_default_router, router_dir

    router_built = build_default_router(state_dir, force=force, progress=not no_progress)
    if as_json:
        click.echo(json.dumps(manifest, indent=2))
        return
    state = "trained" if router_built else "up to date"
    click.echo(f"Router in {router_dir(state_dir)}: {state}.")
    where = state_dir / "models"
    if fresh:
        click.echo(f"Built local models in {where} in {manifest['build_seconds']} s.")
    else:
        click.echo(
            f"Local models in {where} are up to date (fingerprint "
            f"{manifest['fingerprint'][:12]}, built {manifest['built_at']}); nothing to do. "
            "Use --force to rebuild."
        )
    click.echo(format_loss_table(manifest))


def format_loss_table(manifest: dict[str, Any]) -> str:
    """Held-out loss (nats per token, lower is better) of every model on every domain."""
    rows: list[tuple[str, dict[str, float], int]] = [
        (name, info["heldout_loss"], info["parameters"])
        for name, info in manifest["models"].items()
    ]
    rows += [
        (f"small+{name}", info["heldout_loss"], info["trainable_parameters"])
        for name, info in manifest["adapters"].items()
    ]
    domains = [key for key in rows[0][1] if key != "mean"] + ["mean"]
    header = f"{'held-out loss':<16}" + "".join(f"{d:>9}" for d in domains) + f"{'params':>11}"
    lines = [header, "-" * len(header)]
    for name, losses, params in rows:
        cells = "".join(f"{losses[d]:>9.3f}" for d in domains)
        lines.append(f"{name:<16}{cells}{params:>11,}")
    lines.append("(adapter rows count the adapter's own trainable parameters)")
    return "\n".join(lines)
