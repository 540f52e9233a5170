"""A real Spillway started exactly as the README says (`spillway serve --config FILE`),
on a free loopback port, with its own SQLite ledger; stopped with SIGTERM afterwards.

Most e2e tests run `serve_config/tiny.yaml` (the tiny babble models: fast, and their outcome
does not depend on a model's quality); `test_real_default.py` runs `local.yaml` itself, the
real models the README's quick start serves."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LOCAL_CONFIG = REPO / "serve_config" / "local.yaml"
TINY_CONFIG = REPO / "serve_config" / "tiny.yaml"
API_KEY = "sk-spillway-local"
STARTUP_TIMEOUT_S = 420
READY_LINE = b"Spillway is ready"


@dataclass(frozen=True)
class RunningService:
    base_url: str
    api_key: str
    config_path: Path
    ledger_path: Path
    log_path: Path

    def client(self) -> Any:
        from openai import OpenAI

        return OpenAI(base_url=f"{self.base_url}/v1", api_key=self.api_key, max_retries=0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def local_config_data(config: Path = TINY_CONFIG) -> dict[str, Any]:
    """A shipped config as a dict, its paths made absolute (so it can be written anywhere)."""
    data = yaml.safe_load(config.read_text())
    base = config.parent
    data["server"]["state_dir"] = str((base / data["server"]["state_dir"]).resolve())
    data["router"]["artifact"] = str((base / data["router"]["artifact"]).resolve())
    for model in ("small", "large"):
        engine = data[model]["engine"]
        engine["model"] = str((base / engine["model"]).resolve())
        adapters = engine.get("adapters") or {}
        engine["adapters"] = {k: str((base / v).resolve()) for k, v in adapters.items()}
    return data


def write_test_config(
    tmp: Path, overrides: dict[str, Any], config: Path = TINY_CONFIG
) -> tuple[Path, Path]:
    """A shipped config with absolute paths, a fresh ledger, a free port and the overrides."""
    data = local_config_data(config)
    ledger = tmp / "ledger.db"
    data["ledger"]["url"] = f"sqlite:///{ledger}"
    for key, value in overrides.items():
        data[key] = value
    data["ledger"].setdefault("url", f"sqlite:///{ledger}")  # overrides may set other fields
    data["server"]["port"] = free_port()
    path = tmp / "spillway.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, ledger


def private_state(tmp: Path) -> dict[str, Any]:
    """Overrides: the shipped server section with its own state directory under `tmp` (Ray's
    session files, the journal, the spool), for tests that need no compile cache."""
    return {"server": local_config_data()["server"] | {"state_dir": str(tmp / "state")}}


def wait_ready(base_url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Ready when the CLI says so (every deployment is up and the engines are warm), and the
    ingress answers. The ingress alone answers /v1/models while the engines still load."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    headers = {"Authorization": f"Bearer {API_KEY}"}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"spillway serve exited ({proc.returncode}):\n{log.read_text()[-4000:]}"
            )
        if READY_LINE not in log.read_bytes():
            time.sleep(2)
            continue
        try:
            if httpx.get(f"{base_url}/v1/models", headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise TimeoutError(f"not ready in {STARTUP_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")


def stop_service(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    return proc.returncode


@pytest.fixture(scope="session")
def local_models_built() -> None:
    """The tiny models and the router (a no-op when `make test`'s model build already ran)."""
    from orchestrator.localmodels.router import build_default_router
    from orchestrator.localmodels.tiny.build import build_tiny_models

    build_tiny_models(REPO / ".spillway", progress=False)
    build_default_router(REPO / ".spillway", progress=False)


@pytest.fixture(scope="session")
def router_built() -> None:
    """The router alone, for tests whose models are the instant backend (a no-op once built)."""
    from orchestrator.localmodels.router import build_default_router

    build_default_router(REPO / ".spillway", progress=False)


@pytest.fixture(scope="session")
def real_models_built() -> None:
    """The real models, adapters and router local.yaml serves (a no-op once built)."""
    from orchestrator.localmodels.build import build_models
    from orchestrator.localmodels.router import build_default_router

    build_models(REPO / ".spillway", progress=False)
    build_default_router(REPO / ".spillway", progress=False)


def start_service(
    tmp: Path, overrides: dict[str, Any], config: Path = TINY_CONFIG
) -> tuple[RunningService, subprocess.Popen[bytes]]:
    config_path, ledger = write_test_config(tmp, overrides, config)
    port = yaml.safe_load(config_path.read_text())["server"]["port"]
    log = tmp / "serve.log"
    spillway = Path(sys.executable).parent / "spillway"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(spillway), "serve", "--config", str(config_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
    service = RunningService(f"http://127.0.0.1:{port}", API_KEY, config_path, ledger, log)
    try:
        wait_ready(service.base_url, proc, log)
    except BaseException:
        stop_service(proc)
        raise
    return service, proc


# Thresholds chosen so both cascade paths are exercised deterministically: `code` always
# escalates (threshold 1.0), `legal` never does (threshold 0.0). Both decide streams after the
# first 4 tokens, which leaves every decision unchanged at these thresholds.
TEST_CASCADE = {
    "default": {"signal": "mean_prob", "threshold": 0.5},
    "routes": {
        "code": {"signal": "mean_prob", "threshold": 1.0, "stream_decide_after_tokens": 4},
        "legal": {"signal": "mean_prob", "threshold": 0.0, "stream_decide_after_tokens": 4},
    },
}


@pytest.fixture(scope="module")
def service(
    local_models_built: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    running, proc = start_service(tmp_path_factory.mktemp("spillway"), {"cascade": TEST_CASCADE})
    yield running
    code = stop_service(proc)
    assert code == 0, (
        f"spillway serve exited with {code} on SIGTERM:\n{running.log_path.read_text()[-3000:]}"
    )
