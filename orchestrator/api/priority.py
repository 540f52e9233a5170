"""The ingress replica's CPU priority.

Ray's raylet starts every worker process, Serve replicas included, at niceness 15 (its
`worker_niceness`), so that workers never starve Ray's own processes. For the replica that
answers every client that is the wrong trade on a machine where other work fills the cores:
under the scheduler's weights a nice-15 thread gets about 1/28 of the CPU a nice-0 one gets,
so the ingress waits behind any ordinary process at each wake-up, while a proxy in front of
the same backend (LiteLLM's, or the backend itself) runs at 0 (BENCHMARKS.md, "Spillway beside
LiteLLM's proxy"). `server.ingress_niceness` sets it back.

On Linux niceness belongs to each thread, and Ray's threads exist before the replica's code
runs, so every thread of the process is set. Lowering niceness needs privilege (root or
CAP_SYS_NICE); without it the replica keeps Ray's and logs a warning once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["set_process_niceness"]

log = logging.getLogger("spillway")


def set_process_niceness(niceness: int, task_dir: Path = Path("/proc/self/task")) -> int:
    """Set every thread of this process to `niceness`; returns how many threads were set
    (0 where the OS has no per-thread niceness or refuses: then a warning is logged)."""
    threads = _thread_ids(task_dir)
    changed = 0
    for tid in threads:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) != niceness:
                os.setpriority(os.PRIO_PROCESS, tid, niceness)
            changed += 1
        except ProcessLookupError:  # the thread ended meanwhile
            continue
        except PermissionError as error:
            log.warning(
                "cannot set the ingress replica's niceness to %d (%s): it keeps %d; give the "
                "process CAP_SYS_NICE or set server.ingress_niceness: null",
                niceness,
                error,
                os.getpriority(os.PRIO_PROCESS, 0),
            )
            return 0
    return changed


def _thread_ids(task_dir: Path) -> list[int]:
    """This process's thread ids (Linux's /proc/self/task); just the process elsewhere."""
    try:
        return sorted(int(entry.name) for entry in task_dir.iterdir() if entry.name.isdigit())
    except OSError:
        return [0]
