"""LiteLLM's proxy as a peer to measure Spillway against (bench/peers.py).

A pinned LiteLLM (`litellm[proxy]`) goes into a virtual environment of its own under the
benchmark's directory, never into the project's: it is not a dependency, only a yardstick.
Version 1.76.3 is pinned because it installs from PyPI here with its `proxy` extra (1.110's extra
needs a package the registry lacks) and because 1.107.0 was a compromised release: never
move the pin to it. When the install fails, `ensure_litellm` says why and the caller skips the
LiteLLM rows.

The proxy runs with one worker and its defaults, one model (`spillway-large`, OpenAI
provider) pointing at the instant backend, no master key and no database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml

LITELLM_VERSION = "1.76.3"
COMPROMISED = frozenset({"1.107.0"})  # a PyPI audit package warns about this release
STARTUP_TIMEOUT_S = 120.0


class PeerUnavailable(RuntimeError):
    """The peer cannot be installed or started here; its rows are skipped."""


def ensure_litellm(venvs: Path, version: str = LITELLM_VERSION) -> Path:
    """The `litellm` executable of a venv under `venvs` holding `litellm[proxy]==version`,
    created and installed on first use (about a minute). Raises PeerUnavailable with pip's
    last lines when it cannot be installed."""
    if version in COMPROMISED:
        raise PeerUnavailable(f"litellm {version} was a compromised release: pick another")
    venv = venvs / f"litellm-{version}"
    exe = venv / "bin" / "litellm"
    if exe.exists():
        return exe
    venvs.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(venv / "bin" / "pip"), "install", "--quiet", f"litellm[proxy]=={version}"],
    ]
    for step in steps:
        print(f"peers: {' '.join(step[-2:])} ...", file=sys.stderr, flush=True)
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
            raise PeerUnavailable(f"could not install litellm[proxy]=={version}:\n{tail}")
    if not exe.exists():
        raise PeerUnavailable(f"litellm[proxy]=={version} installed no `litellm` command")
    return exe


def proxy_config(backend_url: str, model: str) -> dict[str, object]:
    """LiteLLM's config: `model` forwarded to the OpenAI-compatible server at `backend_url`."""
    params = {"model": f"openai/{model}", "api_base": backend_url, "api_key": "unused"}
    return {"model_list": [{"model_name": model, "litellm_params": params}]}


@contextmanager
def running_proxy(exe: Path, backend_url: str, model: str, port: int) -> Iterator[str]:
    """LiteLLM's proxy on 127.0.0.1:`port` (one worker) until the block ends; yields its base
    URL. Raises PeerUnavailable when it does not become live."""
    with tempfile.TemporaryDirectory(prefix="spillway-litellm-") as tmp:
        config = Path(tmp) / "litellm.yaml"
        config.write_text(yaml.safe_dump(proxy_config(backend_url, model)))
        log = Path(tmp) / "litellm.log"
        command = [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*command, "--num_workers", "1"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp,
                start_new_session=True,
            )
        base_url = f"http://127.0.0.1:{port}"
        try:
            _wait_live(base_url, proc, log)
            yield base_url
        finally:
            _stop(proc)


def _wait_live(base_url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PeerUnavailable(f"litellm exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base_url}/health/liveliness", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise PeerUnavailable(f"litellm not live in {STARTUP_TIMEOUT_S:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the proxy's own process group (it may fork a worker), then SIGKILL."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
