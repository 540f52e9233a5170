"""Own every process a run starts, so a stop leaves none behind.

`spillway serve` starts Ray, Ray starts its node processes, those start agents and workers,
and the vLLM engines start processes of their own. When a parent dies first its children are
orphaned and, normally, adopted by init, out of anyone's sight: Ray's dashboard and runtime-env
agents were seen outliving a stop that way, ignoring SIGTERM. `adopt_orphans` makes this
process a child subreaper (Linux `PR_SET_CHILD_SUBREAPER`): orphans of its descendants are
re-parented to it instead, so after Ray's own shutdown `stop_leftovers` can still find every
one of them (they are all descendants), stop them and reap them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import time
from pathlib import Path

__all__ = ["adopt_orphans", "descendants", "stop_leftovers"]

log = logging.getLogger("spillway")

_PR_SET_CHILD_SUBREAPER = 36
# After Ray's shutdown: how long leftovers get to exit on their own, then after SIGTERM.
EXIT_GRACE_S = 3.0
TERM_GRACE_S = 3.0


def adopt_orphans() -> bool:
    """Become the subreaper of this process's tree; False where the OS has no such thing."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0


def descendants(root: int | None = None) -> dict[int, str]:
    """Live (not zombie) descendants of `root` (default: this process): pid -> command line."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    for pid, (parent, state) in _process_table().items():
        if state != "Z":
            children.setdefault(parent, []).append(pid)
    found: dict[int, str] = {}
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found[pid] = _cmdline(pid)
        stack.extend(children.get(pid, []))
    return found


def stop_leftovers(
    exit_grace_s: float = EXIT_GRACE_S, term_grace_s: float = TERM_GRACE_S
) -> dict[int, str]:
    """Stop what is left of this process's tree after a shutdown: wait for it to exit, then
    SIGTERM, then SIGKILL; reap the zombies. Returns the processes that had to be signalled."""
    left = _wait_gone(descendants(), exit_grace_s)
    signalled = dict(left)
    if left:
        _signal_all(left, signal.SIGTERM)
        left = _wait_gone(left, term_grace_s)
    if left:
        _signal_all(left, signal.SIGKILL)
        _wait_gone(left, term_grace_s)
    _reap()
    for pid, command in signalled.items():
        log.warning("stopped a leftover process %d: %s", pid, command[:160])
    return signalled


def _wait_gone(processes: dict[int, str], grace_s: float) -> dict[int, str]:
    deadline = time.monotonic() + grace_s
    while True:
        _reap()
        alive = {pid: cmd for pid, cmd in processes.items() if _alive(pid)}
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.1)


def _signal_all(processes: dict[int, str], signum: signal.Signals) -> None:
    for pid in processes:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            continue


def _reap() -> None:
    """Collect exited children (adopted orphans included) so none stays a zombie."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _alive(pid: int) -> bool:
    state = _process_table_entry(pid)
    return state is not None and state[1] != "Z"


def _process_table() -> dict[int, tuple[int, str]]:
    table: dict[int, tuple[int, str]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            entry = _process_table_entry(int(name))
            if entry is not None:
                table[int(name)] = entry
    return table


def _process_table_entry(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of `pid`, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return int(fields[1]), fields[0]


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()
