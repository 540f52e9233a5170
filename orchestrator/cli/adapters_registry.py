"""`spillway adapters list|add|remove|promote|canary|rollback`: adapter versions (`legal@3`) in the
adapter registry, through a config file (its state directory) or a running service's admin API.

With `--config` the registry file is changed directly; a running service with that state
directory picks the change up on its next request. With `--url` (and an admin `--api-key`) the
service makes the change and returns once its small model has loaded the new version.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

__all__ = ["REGISTRY_COMMANDS"]

_ENV_KEY = "SPILLWAY_API_KEY"


def _target(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options every registry command shares."""
    options = [
        click.option(
            "--config", "config_path", type=click.Path(path_type=Path), help="Spillway YAML."
        ),
        click.option("--url", help="A running service, e.g. http://127.0.0.1:8000."),
        click.option("--api-key", envvar=_ENV_KEY, help=f"Admin key for --url (or ${_ENV_KEY})."),
        click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


class _Target:
    """Either the registry file of a config or the admin API of a running service."""

    def __init__(self, config_path: Path | None, url: str | None, api_key: str | None):
        if (config_path is None) == (url is None):
            raise click.UsageError("pass exactly one of --config FILE and --url URL")
        if url is not None and not api_key:
            raise click.UsageError(f"--url needs an admin --api-key (or ${_ENV_KEY})")
        self.config_path, self.url, self.api_key = config_path, url, api_key

    def http(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        import httpx

        assert self.url is not None
        headers = {"Authorization": f"Bearer {self.api_key}"}
        url = self.url.rstrip("/") + "/v1/admin/adapters" + path
        try:
            response = httpx.request(method, url, json=body, headers=headers, timeout=300)
        except httpx.HTTPError as error:
            raise click.ClickException(f"{url}: {error}") from None
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text
            raise click.ClickException(f"{response.status_code}: {message}")
        return response.json()

    def registry(self) -> Any:
        from orchestrator.config import ConfigError, load_config
        from orchestrator.config.adapter_registry import adapter_registry_of

        assert self.config_path is not None
        try:
            config = load_config(self.config_path)
        except ConfigError as error:
            raise click.ClickException(str(error)) from None
        registry = adapter_registry_of(config)
        if registry is None:
            raise click.ClickException("this config's small model is remote: no adapter registry")
        return config, registry

    def change(self, apply: Callable[[Any], Any]) -> Any:
        from orchestrator.config.adapter_registry import RegistryError

        _, registry = self.registry()
        try:
            with registry.change() as current:
                return apply(current)
        except RegistryError as error:
            raise click.ClickException(str(error)) from None


def _echo(result: Any, as_json: bool, text: str) -> None:
    click.echo(json.dumps(result, indent=2) if as_json else text)


@click.command(name="list")
@_target
def list_adapters(config_path: Path | None, url: str | None, api_key: str | None, as_json: bool):
    """Adapters by name and version, the version each name serves, and its owner."""
    target = _Target(config_path, url, api_key)
    if url is not None:
        rows = target.http("GET", "")["data"]
    else:
        rows = target.registry()[1].load().listing()
    lines = [
        f"{row['name']:20s} serves {row['serving']:24s} owner {row['owner'] or 'shared':12s} "
        f"versions {', '.join(v['version'] for v in row['versions'])}"
        for row in rows
    ]
    _echo(rows, as_json, "\n".join(lines) or "no adapters")


@click.command()
@click.argument("name")
@click.argument("adapter_dir", type=click.Path(path_type=Path))
@click.option("--tenant", help="Make it private to this tenant (default: shared).")
@click.option("--promote", is_flag=True, help="Serve the new version at once.")
@_target
def add(name: str, adapter_dir: Path, tenant: str | None, promote: bool, **target: Any) -> None:
    """Add ADAPTER_DIR (a PEFT directory) as the next version of NAME. A new NAME serves it at
    once; an existing one keeps serving its version until `promote` (or --promote)."""
    as_json = target.pop("as_json")
    where = _Target(**target)
    if where.url is not None:
        body = {"name": name, "path": str(adapter_dir.resolve()), "tenant": tenant}
        result = where.http("POST", "", body | {"promote": promote})
        _echo(result, as_json, f"added {result['added']} (loaded in {result['load_seconds']} s)")
        return
    from orchestrator.config.adapter_registry import RegistryError, add_adapter

    config, registry = where.registry()
    if tenant is not None and tenant not in {t.name for t in config.tenants}:
        raise click.BadParameter(f"no tenant named {tenant!r} in the config", param_hint="--tenant")
    rank = config.small.engine.max_lora_rank
    try:
        added = add_adapter(
            registry, name, adapter_dir, owner=tenant, promote=promote, max_rank=rank
        )
    except RegistryError as error:
        raise click.ClickException(str(error)) from None
    _echo({"added": added}, as_json, f"added {added}")


def _versioned(version: str) -> tuple[str, int]:
    from orchestrator.config.adapter_registry import RegistryError, split_version

    try:
        name, number = split_version(version)
    except RegistryError as error:
        raise click.BadParameter(str(error), param_hint="VERSION") from None
    if number is None:
        raise click.BadParameter("name a version, e.g. legal@2", param_hint="VERSION")
    return name, number


@click.command()
@click.argument("version")
@_target
def promote(version: str, **target: Any) -> None:
    """Serve VERSION (name@N) for its name; `rollback` returns to the one served before."""
    name, number = _versioned(version)
    as_json = target.pop("as_json")
    where = _Target(**target)
    if where.url is not None:
        result = where.http("POST", f"/{name}/promote", {"version": number})
    else:
        where.change(lambda registry: registry.promote(name, number))
        result = {"serving": version}
    _echo(result, as_json, f"{name} serves {version}")


@click.command()
@click.argument("version")
@click.option(
    "--share", required=True, type=click.FloatRange(0, 1), help="Fraction of NAME's requests."
)
@_target
def canary(version: str, share: float, **target: Any) -> None:
    """Send a share of the requests for a name to VERSION (name@N) to compare it on the
    dashboard (/v1/stats/adapter-versions) before promoting; --share 0 stops it."""
    name, number = _versioned(version)
    as_json = target.pop("as_json")
    where = _Target(**target)
    if where.url is not None:
        result = where.http("POST", f"/{name}/canary", {"version": number, "share": share})
    else:
        where.change(lambda registry: registry.set_canary(name, number, share))
        result = {"canary": version, "share": share}
    _echo(result, as_json, f"{version} gets {share:.0%} of {name}'s requests")


@click.command()
@click.argument("name")
@_target
def rollback(name: str, **target: Any) -> None:
    """Serve the version NAME served before its last promote."""
    as_json = target.pop("as_json")
    where = _Target(**target)
    if where.url is not None:
        result = where.http("POST", f"/{name}/rollback")
        serving = result["result"]
    else:
        serving = where.change(lambda registry: f"{name}@{registry.rollback(name)}")
        result = {"result": serving}
    _echo(result, as_json, f"{name} serves {serving}")


@click.command()
@click.argument("model")
@_target
def remove(model: str, **target: Any) -> None:
    """Remove MODEL: one version (name@N, not the serving one) or a whole name."""
    as_json = target.pop("as_json")
    where = _Target(**target)
    if where.url is not None:
        result = where.http("DELETE", f"/{model}")
        removed = result["result"]
    else:
        removed = where.change(lambda registry: registry.remove(model))
        result = {"result": removed}
    _echo(result, as_json, f"removed {', '.join(removed)}")


REGISTRY_COMMANDS = (list_adapters, add, promote, canary, rollback, remove)
