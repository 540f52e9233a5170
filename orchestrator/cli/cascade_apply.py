"""`spillway cascade calibrate --apply URL`: put the calibrated policy in force on a running
service through its admin API (`PUT /v1/admin/cascade`), after the thresholds file is written.

The call reaches one ingress replica. With several, apply the file's `policy` as the Ingress
deployment's user_config key `cascade` instead (docs/cascade.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orchestrator.cli.cascade_io import write_structured

if TYPE_CHECKING:
    from cascade.calibrate import Calibration

__all__ = [
    "ApplyTarget",
    "apply_options",
    "apply_policy",
    "apply_target",
    "put_to_service",
    "write_thresholds",
]

_ENV_KEY = "SPILLWAY_API_KEY"
_PATH = "/v1/admin/cascade"


@dataclass(frozen=True)
class ApplyTarget:
    url: str
    api_key: str


_CASCADE_APPLY_HELP = (
    "Also put the new policy in force on this running service, e.g. "
    "http://127.0.0.1:8000 (PUT /v1/admin/cascade; reaches one ingress replica)."
)


def apply_options(command: Any, apply_help: str = _CASCADE_APPLY_HELP) -> Any:
    """`--apply URL` and `--api-key KEY` (as `spillway adapters ... --url`); `apply_help`
    says what --apply puts in force."""
    options = [
        click.option("--apply", "apply_url", metavar="URL", help=apply_help),
        click.option("--api-key", envvar=_ENV_KEY, help=f"Admin key for --apply (or ${_ENV_KEY})."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def apply_target(url: str | None, api_key: str | None) -> ApplyTarget | None:
    """The service to apply to, checked before any calibration work is done."""
    if url is None:
        return None
    if not api_key:
        raise click.UsageError(f"--apply needs an admin --api-key (or ${_ENV_KEY})")
    return ApplyTarget(url.rstrip("/"), api_key)


def put_to_service(
    target: ApplyTarget, path: str, body: dict[str, Any], *, timeout: float, kept: str
) -> dict[str, Any]:
    """PUT `body` to an admin endpoint of the running service; its answer. A refusal (the
    service's message names the field) or an unreachable service is a ClickException whose
    message ends with `kept` (what still holds, e.g. "the service keeps its policy")."""
    import httpx

    url = target.url + path
    headers = {"Authorization": f"Bearer {target.api_key}"}
    try:
        response = httpx.put(url, json=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as error:
        raise click.ClickException(f"{url}: {error} ({kept})") from None
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text
        raise click.ClickException(f"{url}: {response.status_code}: {message} ({kept})")
    answer: dict[str, Any] = response.json()
    return answer


def apply_policy(target: ApplyTarget, policy: dict[str, Any]) -> dict[str, Any]:
    """PUT the policy; the service's answer (the policy now in force)."""
    kept = "the thresholds file was written; the service keeps its policy"
    return put_to_service(target, _PATH, policy, timeout=60, kept=kept)


def write_thresholds(
    out_path: Path,
    result: Calibration,
    source: dict[str, Any],
    as_json: bool,
    apply_to: ApplyTarget | None = None,
) -> None:
    """Write the thresholds file, apply its policy (with --apply), say what was done."""
    data = result.to_dict(source)
    write_structured(out_path, data)
    if apply_to is not None:  # on stderr: --json keeps stdout one JSON object
        now = apply_policy(apply_to, data["policy"])
        click.echo(
            f"applied to {apply_to.url}: policy version {now.get('version')} in force on the "
            "ingress replica that answered",
            err=True,
        )
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    d = result.default
    click.echo(
        f"wrote {out_path}: default threshold {d.threshold:.6g} (escalation "
        f"{d.escalation_rate:.3f}, quality {d.quality:.4f} vs large {d.quality_large:.4f}, "
        f"{d.cost_per_1k:.6g} USD per 1k), {len(result.routes)} route(s)"
    )
