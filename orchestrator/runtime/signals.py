"""SIGINT and SIGTERM, whenever they come, become one clean stop.

- While starting (inside `StopSignals.starting()`), the first signal raises `StopRequested` in
  the main thread, which unwinds `ray.init` or `serve.run` wherever they wait; the caller then
  stops whatever was started. `ray.init` puts its own SIGTERM handler in place (it exits
  with status 15): that exit is taken for the same request, and `install()` puts ours back as
  soon as Ray is up.
- While serving, the first signal makes `wait()` return.
- Once stopping, further signals are logged and ignored, so the stop runs to its end (a
  supervisor that cannot wait sends SIGKILL).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["STOP_SIGNALS", "StopRequested", "StopSignals"]

log = logging.getLogger("spillway")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(BaseException):  # like KeyboardInterrupt: not an error to catch
    """A stop signal arrived during start-up."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    def __init__(self) -> None:
        self.received: int | None = None
        self._event = threading.Event()
        self._starting = False

    def install(self) -> None:
        """Handle SIGINT and SIGTERM here (call from the main thread)."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)

    @contextmanager
    def starting(self) -> Iterator[None]:
        """A block a stop signal interrupts with `StopRequested`."""
        self._starting = True
        try:
            yield
        except SystemExit as exit_:  # ray.init's own SIGTERM handler: sys.exit(15)
            if exit_.code != signal.SIGTERM:
                raise
            self.received = self.received or signal.SIGTERM
            raise StopRequested(signal.SIGTERM) from None
        finally:
            self._starting = False

    def wait(self) -> int:
        """Block until a stop signal arrives; returns its number."""
        while not self._event.wait(0.5):
            pass
        assert self.received is not None
        return self.received

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received else ""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            log.warning("%s received while stopping: ignored", signal.Signals(signum).name)
            return
        self.received = signum
        self._event.set()
        if self._starting:
            raise StopRequested(signum)
