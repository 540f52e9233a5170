"""`spillway serve`: run the Serve application until stopped."""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from orchestrator.config import SpillwayConfig


@click.command("serve")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="YAML config, e.g. serve_config/local.yaml (local models, SQLite ledger).",
)
@click.option("--host", default=None, help="Bind address (default: the config's server.host).")
@click.option("--port", default=None, type=int, help="Port (default: the config's server.port).")
def serve(config_path: str, host: str | None, port: int | None) -> None:
    """Start local Ray, deploy Spillway and serve the OpenAI-compatible API until SIGINT or
    SIGTERM, which stop Serve, Ray and every engine process cleanly."""
    from orchestrator.cli.config import load_or_exit
    from orchestrator.runtime import check_local_files, start, stop, with_address

    config = with_address(load_or_exit(config_path), host, port)
    _check_keys(config)
    _check_port_free(config.server.host, config.server.port)
    missing = check_local_files(config)
    if missing:
        click.echo("These files of the config are missing:\n  " + "\n  ".join(missing), err=True)
        click.echo("Build the local models with: spillway models build", err=True)
        sys.exit(2)
    stopping = threading.Event()
    _on_stop_signals(stopping)
    started = time.perf_counter()
    click.echo("Starting Spillway (Ray Serve, router, small and large vLLM engines)...", err=True)
    try:
        start(config)
        _on_stop_signals(stopping)  # again: ray.init installs its own SIGTERM handler (abort)
        url = f"http://{config.server.host}:{config.server.port}"
        elapsed = time.perf_counter() - started
        click.echo(f"Spillway is ready at {url}/v1 ({elapsed:.0f} s). Ctrl-C stops it.", err=True)
        while not stopping.wait(0.5):
            pass
    finally:
        click.echo("Stopping Spillway...", err=True)
        stop()


def _check_keys(config: SpillwayConfig) -> None:
    """Fail before starting Ray when an api_keys_env variable is missing (names only)."""
    from orchestrator.config import ConfigError

    try:
        config.tenant_by_key_digest()
    except ConfigError as exc:
        click.echo(f"API keys: {'; '.join(exc.problems)}", err=True)
        sys.exit(2)


def _check_port_free(host: str, port: int) -> None:
    """Fail before starting Ray when something already listens on host:port; otherwise Serve
    retries the bind (37 s here) and then reports only that a deployment failed."""
    from orchestrator.api.server import listening_socket

    try:
        listening_socket(host, port, shared=False).close()
    except OSError as exc:
        click.echo(
            f"Cannot serve on {host}:{port}: {exc.strerror}. Stop what uses it, or pick "
            "another address with --port/--host (or server.port/server.host).",
            err=True,
        )
        sys.exit(2)


def _on_stop_signals(stopping: threading.Event) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
