"""`server.ingress_niceness`: every thread of the replica's process is set (Linux keeps
niceness per thread, and Ray's threads exist before the replica's code runs); a refusal keeps
the process running with a warning that says how to fix it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.api import priority
from orchestrator.api.priority import set_process_niceness
from orchestrator.config.settings import ServerSettings

SCRIPT = """
import os, threading
from orchestrator.api.priority import set_process_niceness
started, stop = threading.Event(), threading.Event()
def other():
    started.set(); stop.wait(5)
    print("other", os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
thread = threading.Thread(target=other); thread.start(); started.wait(5)
target = os.getpriority(os.PRIO_PROCESS, 0) + 3
print("set", set_process_niceness(target), target)
print("main", os.getpriority(os.PRIO_PROCESS, 0))
stop.set(); thread.join()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness: Linux")
def test_every_thread_of_the_process_gets_the_niceness() -> None:
    """In a child process (raising niceness needs no privilege and cannot be undone
    without it): a thread started before the call is set too."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.strip().splitlines())
    changed, target = (int(v) for v in lines["set"].split())
    assert changed >= 2  # the main thread and the other one (at least)
    assert int(lines["main"]) == int(lines["other"]) == target


def test_a_refusal_keeps_rays_niceness_and_says_how_to_fix_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    def refuse(which: int, who: int, value: int) -> None:
        raise PermissionError("Operation not permitted")

    monkeypatch.setattr(priority.os, "getpriority", lambda which, who: 15)
    monkeypatch.setattr(priority.os, "setpriority", refuse)
    (tmp_path / "101").mkdir()
    (tmp_path / "102").mkdir()
    with caplog.at_level(logging.WARNING, logger="spillway"):
        assert set_process_niceness(0, task_dir=tmp_path) == 0
    assert "keeps 15" in caplog.text and "CAP_SYS_NICE" in caplog.text


def test_the_setting_is_bounded_and_may_be_left_to_ray() -> None:
    assert ServerSettings().ingress_niceness == 0
    assert ServerSettings(ingress_niceness=None).ingress_niceness is None
    with pytest.raises(ValidationError, match="ingress_niceness"):
        ServerSettings(ingress_niceness=20)
