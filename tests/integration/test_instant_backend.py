"""The load test's instant backend (bench/instant_backend.py), as the remote backend sees it:
a real aiohttp server on loopback, read through RemoteLLMDeployment, so the benchmark's
fast backend configuration keeps working as the remote backend changes; and checked against the
`openai` package's own response types, so peers with strict parsers (LiteLLM's proxy,
bench/peers.py) accept it too."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import httpx
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel

from bench import instant_backend
from bench.load_service import instant_models
from orchestrator.backends.llm import GenerationRequest, UnknownAdapterError
from orchestrator.backends.remote import RemoteLLMConfig, RemoteLLMDeployment
from orchestrator.config.settings import ModelSettings
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.timeout(60)

CONFIDENT = "What is the capital of France?"  # crc32 bucket 0.719: above the 0.25 share
UNSURE = "How tall is Mount Everest?"  # bucket 0.048: below it


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with instant_backend.running(free_port()) as url:
        yield url


def deployment(base_url: str, model: str) -> RemoteLLMDeployment:
    overrides = instant_models(base_url)[model]
    settings = ModelSettings.model_validate(overrides)  # the overrides are a valid config
    assert settings.remote is not None
    return RemoteLLMDeployment(RemoteLLMConfig.model_validate(settings.remote.model_dump()))


async def _generate(backend: RemoteLLMDeployment, prompt: str, **kwargs: object) -> list[float]:
    request = GenerationRequest(messages=[{"role": "user", "content": prompt}], **kwargs)  # type: ignore[arg-type]
    try:
        result = await backend.generate(request)
    finally:
        await backend.aclose()
    assert result.text
    assert result.completion_tokens == len(result.token_logprobs)
    return result.token_logprobs


def test_small_confidence_follows_the_prompt_hash(base_url: str) -> None:
    confident = asyncio.run(_generate(deployment(base_url, "small"), CONFIDENT, max_tokens=8))
    unsure = asyncio.run(
        _generate(deployment(base_url, "small"), UNSURE, adapter="legal", max_tokens=2)
    )
    assert [round(math.exp(v), 3) for v in confident] == [0.9] * 4  # capped at 4 tokens
    assert [round(math.exp(v), 3) for v in unsure] == [0.3, 0.3]


def test_large_is_confident_and_health_check_passes(base_url: str) -> None:
    async def check_then_generate() -> list[float]:
        large = deployment(base_url, "large")
        await large.check_health()
        return await _generate(large, UNSURE, max_tokens=8)

    logprobs = asyncio.run(check_then_generate())
    assert [round(math.exp(v), 3) for v in logprobs] == [0.95] * 4


def test_unknown_model_is_refused_in_openai_error_shape(base_url: str) -> None:
    with pytest.raises(UnknownAdapterError):
        asyncio.run(_generate(deployment(base_url, "small"), UNSURE, adapter="nope"))
    response = httpx.post(
        f"{base_url}/chat/completions",
        json={"model": "nope", "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "unknown model 'nope'",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def _no_extra_fields(model: BaseModel, where: str = "") -> None:
    """Every object in the answer is a field the `openai` type declares (none left over as
    extras, which the SDK's lenient models would otherwise accept silently)."""
    assert not model.model_extra, f"{where or type(model).__name__}: extra {model.model_extra}"
    for name in type(model).model_fields:
        value = getattr(model, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, BaseModel):
                _no_extra_fields(item, f"{where}.{name}")


def _body(model: str, **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": UNSURE}], **extra}


@pytest.mark.parametrize("model", ["spillway-small", "legal", "spillway-large"])
def test_answer_is_an_openai_chat_completion(base_url: str, model: str) -> None:
    body = _body(model, max_tokens=3, logprobs=True, top_logprobs=0)
    data = httpx.post(f"{base_url}/chat/completions", json=body).json()
    answer = ChatCompletion.model_validate(data)  # raises on a missing or mistyped field
    _no_extra_fields(answer)
    choice = answer.choices[0]
    assert (answer.object, answer.model, choice.finish_reason) == (
        "chat.completion",
        model,
        "length",
    )
    assert choice.message.content == "An answer."
    assert choice.logprobs is not None and choice.logprobs.content is not None
    tokens = choice.logprobs.content
    assert [t.token for t in tokens] == ["An", " answer", "."]
    assert all(t.top_logprobs == [] and bytes(t.bytes or []) == t.token.encode() for t in tokens)
    assert answer.usage is not None and answer.usage.completion_tokens == 3
    assert answer.created > 0


def test_stream_is_openai_chunks_and_the_remote_backend_reads_it(base_url: str) -> None:
    body = _body("medical", max_tokens=8, stream=True, stream_options={"include_usage": True})
    with httpx.stream("POST", f"{base_url}/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    events = [ChatCompletionChunk.model_validate_json(line[6:]) for line in lines[:-1]]
    for event in events:
        _no_extra_fields(event)
    text = "".join(c.delta.content or "" for e in events for c in e.choices)
    assert text == "An answer."
    assert [c.finish_reason for e in events for c in e.choices if c.finish_reason] == ["stop"]
    assert events[-1].choices == [] and events[-1].usage is not None
    assert events[-1].usage.completion_tokens == 4

    async def stream() -> list[float]:
        backend = deployment(base_url, "small")
        request = GenerationRequest(
            messages=[{"role": "user", "content": UNSURE}], adapter="medical"
        )
        try:
            return [
                lp for d in [d async for d in backend.stream(request)] for lp in d.token_logprobs
            ]
        finally:
            await backend.aclose()

    assert [round(math.exp(v), 3) for v in asyncio.run(stream())] == [0.3] * 4


def test_the_official_client_reads_both_shapes(base_url: str) -> None:
    client = OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    answer = client.chat.completions.create(
        model="spillway-large", messages=[{"role": "user", "content": "hi"}], logprobs=True
    )
    assert answer.choices[0].message.content == "An answer."
    streamed = client.chat.completions.create(
        model="code", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "An answer."


def test_escalating_share_of_prompts_is_near_the_setting() -> None:
    prompts = [f"question number {i}" for i in range(2000)]
    low = sum(instant_backend.small_probability(p, 0.25) < 0.5 for p in prompts)
    assert 0.2 < low / len(prompts) < 0.3
