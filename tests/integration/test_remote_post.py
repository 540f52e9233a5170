"""The remote backend's non-streaming path over aiohttp (`JsonPoster`), against a real HTTP
server on 127.0.0.1: answers, statuses, and each transport failure raised as the httpx error
`RemoteLLMDeployment` retries or maps, so both clients behave alike end to end."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from aiohttp import web

from bench import instant_backend
from orchestrator.backends.remote import RemoteLLMDeployment, RemoteLLMError, RemoteTimeoutError
from orchestrator.backends.remote_post import JsonPoster
from orchestrator.backends.types import GenerationRequest

Handler = Callable[[web.Request], Any]


@asynccontextmanager
async def server(chat: Handler) -> AsyncIterator[str]:
    """An aiohttp server on a free loopback port whose POST /v1/chat/completions is `chat`."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poster(timeout_s: float = 5.0) -> JsonPoster:
    return JsonPoster(max_connections=4, connect_timeout_s=1.0, timeout_s=timeout_s)


def test_answers_and_statuses_come_back_as_httpx_responses() -> None:
    seen: list[dict[str, Any]] = []

    async def chat(request: web.Request) -> web.Response:
        seen.append({"body": await request.json(), "id": request.headers.get("X-Request-Id")})
        status = 200 if seen[-1]["body"]["ok"] else 429
        return web.json_response({"n": len(seen)}, status=status, headers={"x-ratelimit": "1"})

    async def run() -> list[httpx.Response]:
        post = poster()
        async with server(chat) as url:
            answers = [
                await post.post(f"{url}/chat/completions", {"ok": ok}, {"X-Request-Id": "q-1"})
                for ok in (True, False)
            ]
        await post.aclose()
        return answers

    ok, limited = asyncio.run(run())
    assert (ok.status_code, ok.json()) == (200, {"n": 1})
    assert (limited.status_code, limited.headers["x-ratelimit"]) == (429, "1")
    assert seen == [{"body": {"ok": True}, "id": "q-1"}, {"body": {"ok": False}, "id": "q-1"}]


def test_transport_failures_are_the_httpx_errors_the_backend_retries_or_maps() -> None:
    async def hang_up(request: web.Request) -> web.Response:
        request.transport.close()  # type: ignore[union-attr]
        raise ConnectionResetError

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2.0)
        return web.json_response({})

    async def run() -> list[type[BaseException]]:
        kinds: list[type[BaseException]] = []
        refused = f"http://127.0.0.1:{closed_port()}/v1/chat/completions"
        post = poster()
        with pytest.raises(httpx.HTTPError) as info:
            await post.post(refused, {}, {})
        kinds.append(type(info.value))
        await post.aclose()
        for handler, post in ((hang_up, poster()), (slow, poster(timeout_s=0.3))):
            async with server(handler) as url:
                with pytest.raises(httpx.HTTPError) as info:
                    await post.post(f"{url}/chat/completions", {}, {})
                kinds.append(type(info.value))
            await post.aclose()
        return kinds

    assert asyncio.run(run()) == [httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadTimeout]


def remote(url: str, **overrides: Any) -> RemoteLLMDeployment:
    config = instant_backend.remote_configs(url)["large"]
    return RemoteLLMDeployment(config | {"retry_backoff_s": 0.01} | overrides)


REQUEST = GenerationRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=4)


def test_the_default_client_retries_a_503_and_reads_the_answer() -> None:
    calls: list[int] = []

    async def flaky(request: web.Request) -> web.Response:
        body = await request.json()
        calls.append(len(calls))
        if len(calls) == 1:
            return web.json_response({"error": {"message": "busy"}}, status=503)
        return web.json_response(instant_backend.completion(body, 0.0))

    async def run() -> str:
        async with server(flaky) as url:
            deployment = remote(url)
            result = await deployment.generate(REQUEST)
            await deployment.aclose()
        return result.text

    assert asyncio.run(run()) and calls == [0, 1]


def test_the_default_client_reports_unreachable_and_timeouts_as_remote_errors() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2.0)
        return web.json_response({})

    async def run() -> tuple[BaseException, BaseException]:
        down = remote(f"http://127.0.0.1:{closed_port()}/v1", max_retries=1)
        with pytest.raises(RemoteLLMError) as unreachable:
            await down.generate(REQUEST)
        await down.aclose()
        async with server(slow) as url:
            hung = remote(url, timeout_s=0.3)
            with pytest.raises(RemoteTimeoutError) as timed_out:
                await hung.generate(REQUEST)
            await hung.aclose()
        return unreachable.value, timed_out.value

    unreachable, timed_out = asyncio.run(run())
    assert "unreachable" in str(unreachable) and not isinstance(unreachable, RemoteTimeoutError)
    assert "sent nothing for 0.3 s" in str(timed_out)


def test_a_session_per_event_loop_and_a_shut_down_deployment_refuses() -> None:
    async def chat(request: web.Request) -> web.Response:
        return web.json_response(instant_backend.completion(await request.json(), 0.0))

    deployment: RemoteLLMDeployment | None = None

    async def once() -> str:
        nonlocal deployment
        async with server(chat) as url:
            deployment = deployment or remote(url)
            deployment.config = deployment.config.model_copy(update={"base_url": url})
            return (await deployment.generate(REQUEST)).text

    assert asyncio.run(once()) == asyncio.run(once())  # two loops, one deployment
    assert deployment is not None
    deployment.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        asyncio.run(deployment.generate(REQUEST))
