"""`spillway serve`: run the Serve application until stopped.

Exit status: 0 after a stop asked for by SIGINT or SIGTERM (at any moment, start-up included)
that completed; 1 when start-up failed; 2 for a config, key or address problem found before
anything started. Every process the run started is gone when it exits (runtime/processes.py).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from orchestrator.config import SpillwayConfig
    from orchestrator.runtime.signals import StopSignals

# Serve reports the application running before the ingress has asked every backend; "ready"
# is printed when /readyz says so too, within this long.
READY_WAIT_S = 300


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
    SIGTERM, which stop Serve, Ray and every engine process cleanly (exit status 0) at any
    moment, start-up included. Exit status 1: start-up failed; 2: a config problem."""
    from orchestrator.cli.config import load_or_exit
    from orchestrator.runtime import check_local_files, with_address
    from orchestrator.runtime.processes import adopt_orphans
    from orchestrator.runtime.signals import StopSignals

    config = with_address(load_or_exit(config_path), host, port)
    _check_keys(config)
    _check_port_free(config.server.host, config.server.port)
    missing = check_local_files(config)
    if missing:
        click.echo("These files of the config are missing:\n  " + "\n  ".join(missing), err=True)
        click.echo("Build the local models with: spillway models build", err=True)
        sys.exit(2)
    signals = StopSignals()
    signals.install()
    adopt_orphans()  # orphans of the run's processes come back to us, to be stopped
    code = _run(config, signals)
    _shutdown(signals)
    sys.exit(code)


def _run(config: SpillwayConfig, signals: StopSignals) -> int:
    """Start, report ready, serve until a stop signal; the exit status."""
    from orchestrator.runtime import start
    from orchestrator.runtime.signals import StopRequested

    started = time.perf_counter()
    click.echo("Starting Spillway (Ray Serve, router, small and large vLLM engines)...", err=True)
    try:
        with signals.starting():
            start(config, after_ray_init=signals.install)
            _wait_ready(config)
    except StopRequested as stop:
        click.echo(f"{stop} received during start-up.", err=True)
        return 0
    except Exception as error:
        click.echo(f"Spillway could not start: {type(error).__name__}: {error}", err=True)
        return 1
    elapsed = time.perf_counter() - started
    url = f"http://{config.server.host}:{config.server.port}"
    click.echo(f"Spillway is ready at {url}/v1 ({elapsed:.0f} s). Ctrl-C stops it.", err=True)
    signals.wait()
    click.echo(f"{signals.name} received.", err=True)
    return 0


def _shutdown(signals: StopSignals) -> None:
    """Stop Serve (requests in flight drain, queued ledger rows are written) and Ray, then
    whatever process of the run is still there."""
    from orchestrator.runtime import stop
    from orchestrator.runtime.processes import stop_leftovers

    signals.received = signals.received or -1  # from here on, signals are ignored
    click.echo("Stopping Spillway...", err=True)
    try:
        stop()
    finally:
        leftovers = stop_leftovers()
        if leftovers:
            click.echo(f"Stopped {len(leftovers)} process(es) Ray left behind.", err=True)
        click.echo("Spillway stopped.", err=True)


def _wait_ready(config: SpillwayConfig) -> None:
    """Wait until the service's own /readyz answers 200, so "ready" means what it says."""
    import httpx

    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(config.server.host, config.server.host)
    url = f"http://{host}:{config.server.port}/readyz"
    if ":" in host:
        url = f"http://[{host}]:{config.server.port}/readyz"
    deadline = time.monotonic() + READY_WAIT_S
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=15)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as error:
            last = repr(error)
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer 200 within {READY_WAIT_S} s (last: {last})")


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
