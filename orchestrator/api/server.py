"""An HTTP server inside the ingress replica (`server.http_server: ingress`).

With Ray Serve's proxy every request crosses two extra process hops (client -> proxy ->
replica, and the replica calls back into the proxy for the body); on a small machine that hop is
most of Spillway's own latency. Here uvicorn runs on the replica's own event loop, the loop the
FastAPI routes run on, so a request goes from the socket straight to the route.

The listening socket is bound with SO_REUSEPORT: the ingress replicas of one machine share the
port and the kernel spreads connections over them, and a replacement replica can bind while the
old one still drains.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

import uvicorn

log = logging.getLogger("spillway.http")

# When the replica stops, requests in flight get this long to finish (and write their rows).
# The builder gives the ingress deployment a graceful_shutdown_timeout_s above it, or Serve
# would kill the replica first.
DRAIN_S = 25


def listening_socket(host: str, port: int, *, shared: bool = True) -> socket.socket:
    """A bound TCP socket; `shared`: one other processes may bind too (SO_REUSEPORT).

    Raises OSError (address in use, bad address) at once: in the replica's constructor, so
    Serve reports the deployment as failed with the reason, and in `spillway serve`'s check
    (`shared=False`: anything listening there is in the way)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no obstacle
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class _EmbeddedServer(uvicorn.Server):
    """uvicorn that leaves signals to Ray: the replica's process is Ray's, not ours."""

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class ReplicaHTTPServer:
    """uvicorn serving an app on host:port from the replica's event loop, until `stop`.

    The socket is bound at construction (so a taken port fails the replica's constructor);
    serving starts with `start(app)`."""

    def __init__(self, host: str, port: int, *, access_log: bool, drain_s: float = DRAIN_S):
        self.address = f"{host}:{port}"
        self._socket = listening_socket(host, port)
        self._access_log = access_log
        self._drain_s = drain_s
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, app: Any) -> None:
        """Begin serving `app` on the running loop (call it on the replica's loop)."""
        config = uvicorn.Config(
            app,
            lifespan="off",  # Serve already ran the app's lifespan on this replica
            log_config=None,  # keep Ray's logging setup
            log_level="warning",
            access_log=self._access_log,
            server_header=False,
            timeout_graceful_shutdown=max(1, int(self._drain_s)),
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.get_running_loop().create_task(
            self._server.serve(sockets=[self._socket]), name=f"spillway-http {self.address}"
        )
        log.info("ingress replica serving HTTP on %s", self.address)

    def raise_if_stopped(self) -> None:
        """For Serve's health check: a server that died makes the replica unhealthy."""
        task = self._task
        if task is None or task.done():
            error = task.exception() if task is not None and not task.cancelled() else None
            raise RuntimeError(f"the HTTP server on {self.address} is not running: {error}")

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (up to the drain time), close."""
        if self._server is not None:
            self._server.should_exit = True
        task = self._task
        if task is not None:
            try:
                await task
            except Exception:  # stopping anyway; the reason is in the log
                log.exception("the HTTP server on %s failed while stopping", self.address)
        self._socket.close()
