"""Putting a router artifact in service on a running Spillway through its admin API
(`PUT /v1/admin/router`): `spillway router apply DIR --url URL`, and
`spillway router train --from-ledger ... --apply URL`, which applies only a router it wrote.

The path sent is the artifact's absolute path: the router loads it from its own file system,
so the service must see the same path (the same machine, or a shared volume). The call reaches
one replica (docs/router.md, "Putting a new router in service").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from orchestrator.cli.cascade_apply import (
    ApplyTarget,
    apply_options,
    apply_target,
    put_to_service,
)

__all__ = ["ROUTER_PATH", "apply_router", "apply_router_options", "apply_target", "echo_applied"]

ROUTER_PATH = "/v1/admin/router"


_ROUTER_APPLY_HELP = (
    "With --from-ledger: when the new router is written (it beat the serving one), also put "
    "it in service on this running Spillway, e.g. http://127.0.0.1:8000 "
    "(PUT /v1/admin/router; reaches one replica)."
)


def apply_router_options(command: Any) -> Any:
    """`--apply URL` and `--api-key KEY` of `router train --from-ledger`."""
    return apply_options(command, _ROUTER_APPLY_HELP)


def apply_router(target: ApplyTarget, artifact: Path) -> dict[str, Any]:
    """PUT the artifact's path; the service's answer (the artifact now in force). A refusal
    (its message names the reason) or an unreachable service is a ClickException; the
    service then keeps its router."""
    body = {"artifact_path": str(artifact.resolve())}
    kept = "the service keeps its router"
    return put_to_service(target, ROUTER_PATH, body, timeout=300, kept=kept)


def echo_applied(target: ApplyTarget, answer: dict[str, Any], as_json: bool) -> None:
    """Say what is now in service (the full answer with --json)."""
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    click.echo(
        f"router {answer.get('artifact_version')} in service at {target.url} "
        f"({answer.get('placement')} placement, on the replica that answered)"
    )
