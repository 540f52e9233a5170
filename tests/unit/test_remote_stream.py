"""RemoteLLMDeployment.stream (SSE), check_health and shutdown, against a fake server."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from orchestrator.backends.llm import GenerationRequest, StreamDelta
from orchestrator.backends.remote import RemoteLLMDeployment, RemoteLLMError, RemoteTimeoutError

BASE = "http://models.test/v1"
CONFIG = {"base_url": BASE, "served_name": "base-8b", "adapters": ["legal"], "retry_backoff_s": 0}
REQUEST = GenerationRequest(messages=[{"role": "user", "content": "hi"}], adapter="legal")


def chunk(text: str | None, logprobs: list[float], finish: str | None = None) -> dict[str, Any]:
    delta = {} if text is None else {"content": text}
    return {
        "object": "chat.completion.chunk",
        "choices": [
            {
                "index": 0,
                "delta": delta,
                "logprobs": {"content": [{"token": "t", "logprob": lp} for lp in logprobs]},
                "finish_reason": finish,
            }
        ],
    }


USAGE = {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}}
ROLE = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None}]}
EVENTS = [
    ROLE,
    chunk("Usu", [-0.1]),
    chunk("", [-0.2]),  # a token that completes no character yet: still counted
    chunk("ally.", [-0.3], finish="stop"),
    USAGE,
]


def sse(*events: dict[str, Any], done: bool = True) -> bytes:
    lines = [f"data: {json.dumps(e)}\n\n" for e in events] + (["data: [DONE]\n\n"] if done else [])
    return "".join(lines).encode()


class ClosingStream(httpx.AsyncByteStream):
    """A response body that records whether the client closed it."""

    def __init__(self, body: bytes) -> None:
        self.parts, self.closed = body.split(b"\n\n"), False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part + b"\n\n"

    async def aclose(self) -> None:
        self.closed = True


def make(handler: Callable[[httpx.Request], httpx.Response], **overrides: Any):
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return RemoteLLMDeployment(CONFIG | overrides, client=client)


def collect(deployment: RemoteLLMDeployment) -> list[StreamDelta]:
    async def run() -> list[StreamDelta]:
        return [delta async for delta in deployment.stream(REQUEST)]

    return asyncio.run(run())


def test_stream_yields_text_and_logprobs_and_ends_with_finish_and_usage():
    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, content=sse(*EVENTS))

    deltas = collect(make(handler))
    assert sent[0]["stream"] is True and sent[0]["stream_options"] == {"include_usage": True}
    assert sent[0]["logprobs"] is True and sent[0]["top_logprobs"] == 0
    assert "".join(d.text for d in deltas) == "Usually."
    assert [lp for d in deltas for lp in d.token_logprobs] == [-0.1, -0.2, -0.3]
    assert [d.completion_tokens for d in deltas] == [1, 2, 3]
    assert [d.finish_reason for d in deltas] == [None, None, "stop"]
    assert (deltas[-1].prompt_tokens, deltas[-1].completion_tokens) == (9, 3)


def test_usage_on_the_finishing_chunk_is_used_too():
    final = chunk("Usually.", [-0.1, -0.2], finish="length") | {"usage": USAGE["usage"]}
    deltas = collect(make(lambda r: httpx.Response(200, content=sse(final))))
    assert len(deltas) == 1 and deltas[0].finish_reason == "length"
    assert (deltas[0].prompt_tokens, deltas[0].completion_tokens) == (9, 3)


def test_a_stream_without_usage_still_ends_with_counted_tokens(caplog):
    with caplog.at_level(logging.WARNING, logger="orchestrator.backends.remote"):
        deltas = collect(make(lambda r: httpx.Response(200, content=sse(*EVENTS[:-1]))))
    assert deltas[-1].completion_tokens == 3 and "no usage" in caplog.text


def test_an_error_event_mid_stream_raises():
    body = sse(chunk("Usu", [-0.1]), {"error": {"message": "engine died", "code": 500}})
    with pytest.raises(RemoteLLMError, match="engine died"):
        collect(make(lambda r: httpx.Response(200, content=body)))


def test_a_stream_that_stops_before_the_answer_ends_raises():
    body = sse(chunk("Usu", [-0.1]), done=False)
    with pytest.raises(RemoteLLMError, match="ended before"):
        collect(make(lambda r: httpx.Response(200, content=body)))


def test_opening_a_stream_is_retried_but_nothing_after_data_arrived():
    answers = [httpx.Response(503, json={"error": {"message": "warming up"}})]
    answers.append(httpx.Response(200, content=sse(*EVENTS)))
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return answers.pop(0)

    assert "".join(d.text for d in collect(make(handler))) == "Usually."
    assert len(calls) == 2


def test_a_read_timeout_mid_stream_is_a_timeout():
    class Stalling(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield sse(chunk("Usu", [-0.1]), done=False)
            raise httpx.ReadTimeout("stalled")

    with pytest.raises(RemoteTimeoutError):
        collect(make(lambda r: httpx.Response(200, stream=Stalling())))


def test_a_consumer_that_stops_early_closes_the_response():
    body = ClosingStream(sse(*EVENTS))
    deployment = make(lambda r: httpx.Response(200, stream=body))

    async def first() -> StreamDelta:
        stream = deployment.stream(REQUEST)
        delta = await anext(stream)
        await stream.aclose()  # the cascade (or a client) stops reading
        return delta

    assert asyncio.run(first()).text == "Usu" and body.closed


# -- health and lifecycle ----------------------------------------------------------------------


def models(*names: str) -> httpx.Response:
    return httpx.Response(200, json={"object": "list", "data": [{"id": n} for n in names]})


def health(handler: Callable[[httpx.Request], httpx.Response]) -> None:
    asyncio.run(make(handler).check_health())


def test_health_needs_the_base_model_listed_and_only_warns_about_adapters(caplog):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return models("base-8b")

    with caplog.at_level(logging.WARNING, logger="orchestrator.backends.remote"):
        health(handler)
    assert seen == [f"{BASE}/models"] and "legal" in caplog.text
    with pytest.raises(RemoteLLMError, match="does not serve 'base-8b'"):
        health(lambda r: models("legal"))
    with pytest.raises(RemoteLLMError, match="503"):
        health(lambda r: httpx.Response(503, text="starting"))


def test_health_of_an_unreachable_server_raises():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(RemoteLLMError, match="unreachable"):
        health(refuse)


def test_calls_after_shutdown_fail_clearly_and_shutdown_is_idempotent():
    deployment = make(lambda r: models("base-8b"))
    deployment.shutdown()
    deployment.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        asyncio.run(deployment.check_health())


def test_an_owned_client_is_closed_by_shutdown_inside_or_outside_a_loop():
    outside = RemoteLLMDeployment(CONFIG)
    client = outside._client
    outside.shutdown()
    assert client is not None and client.is_closed

    async def inside() -> httpx.AsyncClient | None:
        deployment = RemoteLLMDeployment(CONFIG)
        owned = deployment._client
        deployment.shutdown()  # e.g. Serve calling __del__ on the replica's loop
        await asyncio.sleep(0)
        return owned

    closed = asyncio.run(inside())
    assert closed is not None and closed.is_closed


def test_a_passed_client_is_left_open():
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: models("base-8b")))
    RemoteLLMDeployment(CONFIG, client=client).shutdown()
    assert not client.is_closed
    asyncio.run(client.aclose())
