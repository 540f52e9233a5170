"""The ingress replica's own HTTP server (orchestrator/replica_http.py) on real loopback
sockets, without Ray: port sharing, draining on stop, health and a taken port."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from orchestrator.api.server import ReplicaHTTPServer, listening_socket
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.timeout(60)


def app_saying(text: str, *, delay_s: float = 0.0) -> Starlette:
    async def answer(_: Request) -> PlainTextResponse:
        await asyncio.sleep(delay_s)
        return PlainTextResponse(text)

    return Starlette(routes=[Route("/", answer)])


async def until_listening(port: int) -> None:
    """The server task listens a few loop turns after `start`."""
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        return
    raise TimeoutError(f"nothing listens on {port}")


def test_replicas_of_one_machine_share_the_port() -> None:
    port = free_port()
    first = listening_socket("127.0.0.1", port)
    second = listening_socket("127.0.0.1", port)
    try:
        assert first.getsockname() == second.getsockname() == ("127.0.0.1", port)
    finally:
        first.close()
        second.close()


def test_a_port_held_without_reuseport_fails_at_bind() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        with pytest.raises(OSError):
            listening_socket("127.0.0.1", holder.getsockname()[1])
    finally:
        holder.close()


def test_serves_then_drains_a_request_in_flight_before_stopping() -> None:
    port = free_port()

    async def scenario() -> tuple[str, str, int, str]:
        server = ReplicaHTTPServer("127.0.0.1", port, access_log=False, drain_s=10)
        server.start(app_saying("slow answer", delay_s=1.0))
        url = f"http://127.0.0.1:{port}/"
        await until_listening(port)
        async with httpx.AsyncClient(timeout=10) as client:
            server.raise_if_stopped()
            in_flight = asyncio.create_task(client.get(url))
            await asyncio.sleep(0.3)  # the request has reached the route
            await server.stop()
            answer = await in_flight
        with pytest.raises(RuntimeError, match="not running"):
            server.raise_if_stopped()
        try:
            httpx.get(url, timeout=2)
            after = "answered"
        except httpx.ConnectError:
            after = "refused"
        return answer.text, answer.headers.get("server", "none"), answer.status_code, after

    text, server_header, status, after = asyncio.run(scenario())
    assert (text, status) == ("slow answer", 200)  # finished although stop began mid-request
    assert server_header == "none"  # uvicorn's banner is not sent
    assert after == "refused"  # stopped means the port is closed


def test_two_servers_on_one_port_both_answer() -> None:
    port = free_port()

    async def scenario() -> set[str]:
        servers = [
            ReplicaHTTPServer("127.0.0.1", port, access_log=False, drain_s=1) for _ in range(2)
        ]
        for name, server in zip(("a", "b"), servers, strict=True):
            server.start(app_saying(name))
        seen: set[str] = set()
        try:
            await until_listening(port)
            for _ in range(64):  # a new connection each time: the kernel spreads them
                async with httpx.AsyncClient(timeout=5) as client:
                    seen.add((await client.get(f"http://127.0.0.1:{port}/")).text)
                if len(seen) == 2:
                    break
        finally:
            for server in servers:
                await server.stop()
        return seen

    assert asyncio.run(scenario()) == {"a", "b"}


def test_serve_waits_longer_than_the_drain_before_killing_the_replica() -> None:
    from orchestrator.api.server import DRAIN_S
    from orchestrator.builder import INGRESS_SHUTDOWN_S

    assert INGRESS_SHUTDOWN_S >= DRAIN_S + 10  # Serve's 2-s wait loop, then the ledger's close
