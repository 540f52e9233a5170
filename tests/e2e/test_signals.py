"""`spillway serve` stops cleanly on SIGINT or SIGTERM at any moment (issue 17): while Ray
starts, while the deployments start, the instant /readyz first answers 200, after "ready"
and under load. Each time the exit status is 0, the log ends with "Spillway stopped.", and
no process of the run survives: the processes alive after the exit are compared with those
alive before the start (every process the run starts is in the session it was started in).

Under load, every request ends answered or cleanly refused, and every answered query has its
ledger row. The models are the instant backend (bench/instant_backend.py): the stops are the
subject here, not the engines (tests/e2e/test_faults.py stops real engines).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from bench import instant_backend
from bench.load_service import instant_models
from tests.e2e.conftest import REPO, free_port, private_state, write_test_config
from tests.e2e.faultload import Load

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

STOP_TIMEOUT_S = 120
START_TIMEOUT_S = 300


@dataclass
class Run:
    """One `spillway serve` process and what it needs to be judged."""

    proc: subprocess.Popen[bytes]
    base_url: str
    log: Path
    ledger: Path
    before: set[int]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def survivors(self) -> dict[int, str]:
        """Processes of the run's session alive now that were not alive before it."""
        found = {}
        for pid in _pids() - self.before:
            try:
                if os.getsid(pid) == self.proc.pid and _state(pid) != "Z":
                    found[pid] = _cmdline(pid)
            except OSError:
                continue
        return found

    def session_size(self) -> int:
        return len([pid for pid in _pids() - self.before if _sid(pid) == self.proc.pid])

    def readyz(self) -> int | None:
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=5).status_code
        except httpx.HTTPError:
            return None

    def stop_with(self, signum: signal.Signals) -> int:
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise


def _pids() -> set[int]:
    return {int(name) for name in os.listdir("/proc") if name.isdigit()}


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:160]
    except OSError:
        return ""


@pytest.fixture(scope="module")
def backend_url() -> Iterator[str]:
    with instant_backend.running(free_port()) as url:
        yield url


@pytest.fixture
def launch(router_built: None, backend_url: str, tmp_path: Path) -> Iterator[list[Run]]:
    """Start `spillway serve` (instant models, journaled SQLite ledger) without waiting."""
    runs: list[Run] = []
    yield runs
    for run in runs:  # a failed test must not leave its service running
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
            run.proc.wait(timeout=30)
        for pid in run.survivors():
            os.kill(pid, signal.SIGKILL)


def _start(runs: list[Run], backend_url: str, tmp: Path) -> Run:
    config, ledger = write_test_config(tmp, instant_models(backend_url) | private_state(tmp))
    port = yaml.safe_load(config.read_text())["server"]["port"]
    log = tmp / "serve.log"
    spillway = Path(sys.executable).parent / "spillway"
    before = _pids()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(spillway), "serve", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
    run = Run(proc, f"http://127.0.0.1:{port}", log, ledger, before)
    runs.append(run)
    return run


def _wait(condition: object, run: Run, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not condition():  # type: ignore[operator]
        assert run.proc.poll() is None, f"exited ({run.proc.returncode}):\n{run.log_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} in {START_TIMEOUT_S}s"
        time.sleep(0.05)


def _assert_clean_stop(run: Run, code: int) -> None:
    log = run.log_text()
    assert code == 0, f"exit status {code}:\n{log[-3000:]}"
    assert "Spillway stopped." in log, log[-3000:]
    assert "SIGTERM received at time" not in log  # Ray's abort handler never ran
    time.sleep(1)  # anything still exiting has had its moment
    assert run.survivors() == {}, log[-2000:]


def _replica_started(run: Run) -> bool:
    return any("ServeReplica:spillway" in _cmdline(pid) for pid in _pids() - run.before)


def test_sigterm_while_ray_starts(launch: list[Run], backend_url: str, tmp_path: Path) -> None:
    run = _start(launch, backend_url, tmp_path)
    _wait(lambda: run.session_size() >= 3, run, "Ray process")  # gcs/raylet coming up
    _assert_clean_stop(run, run.stop_with(signal.SIGTERM))
    assert "SIGTERM received during start-up." in run.log_text()


def test_sigterm_while_deployments_start(
    launch: list[Run], backend_url: str, tmp_path: Path
) -> None:
    run = _start(launch, backend_url, tmp_path)
    _wait(lambda: _replica_started(run), run, "Serve replica")
    _assert_clean_stop(run, run.stop_with(signal.SIGTERM))


def test_sigterm_the_moment_readyz_answers(
    launch: list[Run], backend_url: str, tmp_path: Path
) -> None:
    run = _start(launch, backend_url, tmp_path)
    _wait(lambda: run.readyz() == 200, run, "/readyz 200")
    _assert_clean_stop(run, run.stop_with(signal.SIGTERM))


def test_ready_means_readyz_then_sigint_under_load(
    launch: list[Run], backend_url: str, tmp_path: Path
) -> None:
    run = _start(launch, backend_url, tmp_path)
    _wait(lambda: "Spillway is ready" in run.log_text(), run, "ready line")
    assert run.readyz() == 200  # the CLI's "ready" is /readyz's
    _under_load_then(run, signal.SIGINT)


def test_sigterm_under_load(launch: list[Run], backend_url: str, tmp_path: Path) -> None:
    run = _start(launch, backend_url, tmp_path)
    _wait(lambda: "Spillway is ready" in run.log_text(), run, "ready line")
    _under_load_then(run, signal.SIGTERM)


def _under_load_then(run: Run, signum: signal.Signals) -> None:
    with Load(run.base_url, "sk-spillway-local", workers=3) as load:
        load.wait_for("answered", 20, 120)
        code = run.stop_with(signum)
    _assert_clean_stop(run, code)
    bad = [o for o in load.outcomes if o.kind not in {"answered", "error", "refused", "broken"}]
    assert not bad, load.summary()
    answered = {o.query_id for o in load.outcomes if o.kind == "answered" and o.query_id}
    with sqlite3.connect(run.ledger) as connection:
        rows = {r[0] for r in connection.execute("SELECT query_id FROM ledger")}
    assert answered <= rows, f"{len(answered - rows)} answered queries have no row"
