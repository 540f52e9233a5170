"""A stop signal during start-up unwinds it (also ray.init's own SIGTERM exit), while serving
it ends the wait, and while stopping it is ignored; the CLI's process tree is its own, so an
orphaned grandchild is found and stopped after a shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest

from orchestrator.runtime.signals import StopRequested, StopSignals


@pytest.fixture
def signals() -> Iterator[StopSignals]:
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    handler = StopSignals()
    handler.install()
    yield handler
    for signum, action in previous.items():
        signal.signal(signum, action)


def _send_soon(signum: signal.Signals, delay: float = 0.2) -> None:
    threading.Timer(delay, os.kill, (os.getpid(), signum)).start()


def test_a_signal_during_start_up_unwinds_it(signals: StopSignals) -> None:
    with pytest.raises(StopRequested) as caught, signals.starting():
        _send_soon(signal.SIGTERM)
        time.sleep(5)  # stands for ray.init or serve.run waiting
    assert caught.value.signum == signal.SIGTERM and signals.name == "SIGTERM"


def test_ray_inits_own_sigterm_exit_is_a_stop_request(signals: StopSignals) -> None:
    with pytest.raises(StopRequested), signals.starting():
        sys.exit(signal.SIGTERM)  # what ray.init's handler does
    with pytest.raises(SystemExit), signals.starting():
        sys.exit(3)  # any other exit is not


def test_while_serving_the_signal_ends_the_wait_and_a_second_is_ignored(
    signals: StopSignals,
) -> None:
    _send_soon(signal.SIGINT)
    assert signals.wait() == signal.SIGINT
    os.kill(os.getpid(), signal.SIGTERM)  # during the stop: logged, nothing raised
    time.sleep(0.1)
    assert signals.received == signal.SIGINT


CHILD = textwrap.dedent(
    """
    import subprocess, sys, time
    from orchestrator.runtime.processes import adopt_orphans, descendants, stop_leftovers
    assert adopt_orphans()
    # a grandchild that ignores SIGTERM, orphaned at once (its parent exits)
    subprocess.run(["sh", "-c", "trap '' TERM; sleep 300 & exit 0"], check=True)
    time.sleep(0.3)
    orphans = descendants()
    print(len(orphans), flush=True)
    stopped = stop_leftovers(exit_grace_s=0.2, term_grace_s=0.5)
    print(sorted(stopped) == sorted(orphans), len(descendants()), flush=True)
    """
)


def test_an_orphan_that_ignores_sigterm_is_adopted_and_stopped() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=True
    )
    adopted, result = done.stdout.splitlines()
    assert adopted == "1"  # the orphaned sleep came back to the subreaper
    assert result == "True 0"
