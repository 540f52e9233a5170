"""RemoteLLMDeployment.generate and its error mapping, against a fake OpenAI server.

The fake runs in process on ``httpx.MockTransport``: each test scripts the server's answers
and then checks what was sent and what the caller got.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from orchestrator.backends.llm import (
    ChatMessage,
    GenerationRequest,
    LLMRequestError,
    PromptTooLongError,
    UnknownAdapterError,
)
from orchestrator.backends.remote import RemoteLLMDeployment, RemoteLLMError, RemoteTimeoutError

BASE = "http://models.test:8000/v1"
CONFIG = {
    "base_url": BASE,
    "served_name": "base-8b",
    "adapters": ["legal", "code"],
    "retry_backoff_s": 0,
}
MESSAGES = [{"role": "user", "content": "Can my landlord keep the deposit?"}]

Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class FakeServer:
    """Answers requests from a script (the last answer repeats) and records them."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer(request) if callable(answer) else answer

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


def completion(text: str = "Usually not.", logprobs: list[float] | None = None) -> httpx.Response:
    logprobs = [-0.1, -0.5, -0.01] if logprobs is None else logprobs
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "whatever",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": {"content": [{"token": "t", "logprob": lp} for lp in logprobs]},
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": len(logprobs), "total_tokens": 15},
    }
    return httpx.Response(200, json=body)


def error(status: int, message: str, param: str | None = None, code: Any = None) -> httpx.Response:
    body = {"error": {"message": message, "type": "BadRequestError", "param": param, "code": code}}
    return httpx.Response(status, json=body)


def deployment(server: FakeServer, **overrides: Any) -> RemoteLLMDeployment:
    client = httpx.AsyncClient(transport=httpx.MockTransport(server))
    return RemoteLLMDeployment(CONFIG | overrides, client=client)


def generate(server: FakeServer, request: GenerationRequest | None = None, **overrides: Any):
    request = request or GenerationRequest(messages=MESSAGES, adapter="legal", max_tokens=3)
    return asyncio.run(deployment(server, **overrides).generate(request))


def test_generate_sends_an_openai_request_and_reads_text_logprobs_and_usage():
    server = FakeServer(completion())
    request = GenerationRequest(
        messages=[ChatMessage("user", "hi")],
        adapter="legal",
        max_tokens=3,
        temperature=0.7,
        top_p=0.9,
        stop=["\n"],
        seed=7,
        request_id="q-123",
    )
    result = generate(server, request)
    (sent,) = server.requests
    assert str(sent.url) == f"{BASE}/chat/completions" and sent.method == "POST"
    assert sent.headers["x-request-id"] == "q-123"
    assert "authorization" not in sent.headers
    assert server.bodies()[0] == {
        "model": "legal",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 3,
        "temperature": 0.7,
        "top_p": 0.9,
        "stop": ["\n"],
        "seed": 7,
        "logprobs": True,
        "top_logprobs": 0,
    }
    assert result.text == "Usually not."
    assert result.token_logprobs == [-0.1, -0.5, -0.01]
    assert result.token_ids == []
    assert (result.prompt_tokens, result.completion_tokens) == (12, 3)
    assert result.finish_reason == "length"
    assert result.model == "legal"


def test_base_model_requests_use_the_served_name():
    server = FakeServer(completion())
    result = generate(server, GenerationRequest(messages=MESSAGES))
    body = server.bodies()[0]
    assert body["model"] == "base-8b" and "stop" not in body and "seed" not in body
    assert result.model == "base-8b"


def test_unset_sampling_is_left_to_the_remote_servers_defaults():
    server = FakeServer(completion())
    generate(server, GenerationRequest(messages=MESSAGES, temperature=None, top_p=None))
    body = server.bodies()[0]
    assert "temperature" not in body and "top_p" not in body
    assert body["logprobs"] is True


def test_api_key_comes_from_the_named_environment_variable(monkeypatch):
    monkeypatch.setenv("SPILLWAY_TEST_KEY", "sk-secret-123")
    server = FakeServer(completion())
    generate(server, api_key_env="SPILLWAY_TEST_KEY")
    assert server.requests[0].headers["authorization"] == "Bearer sk-secret-123"


def test_missing_api_key_variable_fails_at_construction(monkeypatch):
    monkeypatch.delenv("SPILLWAY_NO_SUCH_KEY", raising=False)
    with pytest.raises(ValueError, match="SPILLWAY_NO_SUCH_KEY"):
        RemoteLLMDeployment(CONFIG | {"api_key_env": "SPILLWAY_NO_SUCH_KEY"})


def test_refused_key_is_a_server_side_error_that_never_shows_the_key(monkeypatch):
    monkeypatch.setenv("SPILLWAY_TEST_KEY", "sk-secret-123")
    server = FakeServer(error(401, "Unauthorized"))
    with pytest.raises(RemoteLLMError) as caught:
        generate(server, api_key_env="SPILLWAY_TEST_KEY")
    assert "SPILLWAY_TEST_KEY" in str(caught.value) and "sk-secret" not in str(caught.value)
    assert caught.value.status == 401 and len(server.requests) == 1  # not retried


def test_unknown_adapter_is_rejected_before_any_request():
    server = FakeServer(completion())
    with pytest.raises(UnknownAdapterError) as caught:
        generate(server, GenerationRequest(messages=MESSAGES, adapter="medical"))
    assert caught.value.param == "model" and server.requests == []


def test_server_404_for_an_adapter_is_unknown_adapter_but_for_the_base_a_server_error():
    not_found = error(404, "The model `legal` does not exist.", param="model", code=404)
    with pytest.raises(UnknownAdapterError, match="does not exist"):
        generate(FakeServer(not_found))
    with pytest.raises(RemoteLLMError, match="404"):
        generate(FakeServer(not_found), GenerationRequest(messages=MESSAGES))
    wrong_path = httpx.Response(404, json={"detail": "Not Found"})
    with pytest.raises(RemoteLLMError, match="404"):  # base_url without /v1: not the client's
        generate(FakeServer(wrong_path))


@pytest.mark.parametrize(
    "answer",
    [
        error(
            400,
            "This model's maximum context length is 256 tokens. However, your prompt contains "
            "300 input tokens. Please reduce the length of the input prompt.",
            param="input_tokens",
        ),
        error(400, "Too long.", param="messages", code="context_length_exceeded"),  # OpenAI
    ],
)
def test_context_length_errors_become_prompt_too_long(answer):
    with pytest.raises(PromptTooLongError) as caught:
        generate(FakeServer(answer))
    assert caught.value.param == "messages"


def test_other_bad_requests_become_request_errors_naming_the_field():
    server = FakeServer(error(400, "temperature must be in [0, 2]", param="temperature"))
    with pytest.raises(LLMRequestError) as caught:
        generate(server)
    assert type(caught.value) is LLMRequestError and caught.value.param == "temperature"
    assert len(server.requests) == 1


def test_max_tokens_above_a_known_context_is_rejected_locally():
    server = FakeServer(completion())
    with pytest.raises(PromptTooLongError, match="max_tokens"):
        generate(server, GenerationRequest(messages=MESSAGES, max_tokens=300), max_model_len=256)
    assert server.requests == []


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_transient_statuses_are_retried(status):
    server = FakeServer(error(status, "busy"), error(status, "busy"), completion())
    assert generate(server).text == "Usually not."
    assert len(server.requests) == 3


def test_retries_stop_after_max_retries():
    server = FakeServer(error(503, "overloaded"))
    with pytest.raises(RemoteLLMError, match="503") as caught:
        generate(server, max_retries=1)
    assert caught.value.status == 503 and len(server.requests) == 2


def test_connect_errors_are_retried_then_reported():
    refused = httpx.ConnectError("connection refused")
    server = FakeServer(refused, completion())
    assert generate(server).text == "Usually not." and len(server.requests) == 2
    server = FakeServer(refused)
    with pytest.raises(RemoteLLMError, match="unreachable"):
        generate(server, max_retries=2)
    assert len(server.requests) == 3


def test_a_read_timeout_is_a_timeout_and_not_retried():
    server = FakeServer(httpx.ReadTimeout("no answer"))
    with pytest.raises(RemoteTimeoutError) as caught:
        generate(server)
    assert isinstance(caught.value, TimeoutError) and len(server.requests) == 1


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, content=b"<html>oops</html>"),
        httpx.Response(200, json={"choices": []}),
        httpx.Response(
            200,
            json={
                "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1},
            },
        ),
    ],
    ids=["not-json", "no-choices", "no-logprobs"],
)
def test_unusable_answers_are_server_errors(answer):
    with pytest.raises(RemoteLLMError):
        generate(FakeServer(answer))


def test_an_empty_answer_needs_no_logprobs():
    result = generate(FakeServer(completion(text="", logprobs=[])))
    assert (result.text, result.token_logprobs, result.completion_tokens) == ("", [], 0)
