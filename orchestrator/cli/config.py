"""`spillway config check`: validate configs and report every error with its YAML path."""

from __future__ import annotations

import sys

import click

from orchestrator.config import ConfigError, SpillwayConfig, load_config


def load_or_exit(path: str) -> SpillwayConfig:
    """Load a config, or print every problem and exit with status 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(f"{exc.source}: {len(exc.problems)} problem(s)", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(2)


@click.group("config")
def config() -> None:
    """Inspect and validate Spillway configs."""


@config.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def check(files: tuple[str, ...]) -> None:
    """Validate each FILE; exit 2 when any has errors (each printed with its YAML path)."""
    failed = False
    for path in files:
        try:
            load_config(path)
        except ConfigError as exc:
            failed = True
            click.echo(f"{exc.source}: {len(exc.problems)} problem(s)")
            for problem in exc.problems:
                click.echo(f"  {problem}")
        else:
            click.echo(f"{path}: ok")
    sys.exit(2 if failed else 0)
