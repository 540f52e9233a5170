"""The training-thread default of `router train --kind auto`: idle cores, measured two ways."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.cli.router_options import busy_cores_now, cores_left


def test_a_core_is_taken_only_when_both_measures_say_so() -> None:
    assert cores_left(2, 1.6, 0.1) == 2  # the load average lags an idle machine
    assert cores_left(2, 0.2, 1.7) == 2  # a one-second blip
    assert cores_left(2, 1.2, 1.0) == 1  # another job holds a core
    assert cores_left(2, 7.5, 2.0) == 1  # overloaded: still one thread


def test_without_proc_stat_the_load_average_decides() -> None:
    assert cores_left(2, 1.6, None) == 1
    assert cores_left(4, 0.4, None) == 4


def test_the_sample_reads_proc_stat() -> None:
    busy = busy_cores_now(0.05)
    if not Path("/proc/stat").exists():
        assert busy is None
        return
    assert busy is not None and 0.0 <= busy <= (os.cpu_count() or 1) + 1e-6
