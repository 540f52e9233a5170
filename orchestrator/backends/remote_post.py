"""`JsonPoster`: the remote backend's non-streaming POSTs over aiohttp.

Why not httpx, which the rest of the remote backend uses: on the request path it is the
largest piece of Python (a py-spy profile of the ingress at 20 req/s: about 40% of the time the
replica holds the GIL, BENCHMARKS.md), and one POST to a local OpenAI-compatible server takes
about 0.6 ms with httpx against 0.2 ms with aiohttp (the same body, sequential, loopback).
aiohttp comes with Ray Serve. Streams and health checks stay on httpx: they are not per query
or are dominated by the model's own time.

The answer comes back as an `httpx.Response` (status, headers, body read), and aiohttp's errors
are raised as the httpx errors they correspond to, so `RemoteLLMDeployment`'s retries and error
mapping are the same for both clients:

- connection refused / DNS: `httpx.ConnectError` (retried, then "unreachable");
- no connection within `connect_timeout_s` (a new one) or `timeout_s` (one from the pool):
  `httpx.ConnectTimeout` (retried);
- the server closed the connection before answering: `httpx.RemoteProtocolError` (retried);
- nothing read for `timeout_s`: `httpx.ReadTimeout` (a timeout, not retried);
- other broken connections: `httpx.ReadError`; anything else of aiohttp: `httpx.TransportError`.

A session belongs to the event loop that made it: one is made per loop on first use (a Serve
replica has one loop; tests may run several).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import httpx

__all__ = ["JsonPoster"]

log = logging.getLogger("orchestrator.backends.remote")


class JsonPoster:
    """POSTs a JSON body and reads the whole answer; at most `max_connections` at once."""

    def __init__(self, *, max_connections: int, connect_timeout_s: float, timeout_s: float):
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self._limit = max_connections
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=connect_timeout_s, sock_read=timeout_s
        )
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def post(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        """The server's answer, whatever its status; raises httpx errors (see the module)."""
        data = json.dumps(body).encode("utf-8")
        sent = {**headers, "Content-Type": "application/json"}
        try:
            async with self._live().post(url, data=data, headers=sent) as answer:
                content = await answer.read()
                status, received = answer.status, list(answer.headers.items())
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc)) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timeout") from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise httpx.RemoteProtocolError(str(exc) or "server disconnected") from exc
        except TimeoutError as exc:  # aiohttp's SocketTimeoutError, and asyncio's
            raise httpx.ReadTimeout(str(exc) or "read timeout") from exc
        except aiohttp.ClientOSError as exc:
            raise httpx.ReadError(str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise httpx.TransportError(repr(exc)) from exc
        return httpx.Response(status, headers=received, content=content)

    def _live(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop:
            self._drop()
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        session, self._session, self._loop = self._session, None, None
        if session is not None:
            await session.close()

    def close(self) -> asyncio.Task[None] | None:
        """Close from synchronous code: a task on the running loop when there is one, else
        the session's connections are dropped (their loop is gone)."""
        if self._session is None:
            return None
        if self._loop is not None and self._loop.is_running():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is self._loop:
                return running.create_task(self.aclose())
        self._drop()
        return None

    def _drop(self) -> None:
        """Forget a session whose loop is gone or not ours (nothing to await it on)."""
        session, self._session, self._loop = self._session, None, None
        if session is None or session.closed:
            return
        connector = session.connector
        session.detach()
        if connector is not None:
            try:
                connector._close()  # the sockets; nothing is awaited on a loop that is gone
            except Exception as exc:  # pragma: no cover - best effort at teardown
                log.debug("dropping the aiohttp connector: %r", exc)
