"""The load test's instant backend (bench/instant_backend.py), as the remote backend sees it:
a real aiohttp server on loopback, read through RemoteLLMDeployment, so the benchmark's
fast backend configuration keeps working as the remote backend changes."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import httpx
import pytest

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


def test_unknown_model_and_stream_are_refused(base_url: str) -> None:
    with pytest.raises(UnknownAdapterError):
        asyncio.run(_generate(deployment(base_url, "small"), UNSURE, adapter="nope"))
    response = httpx.post(
        f"{base_url}/chat/completions",
        json={
            "model": "spillway-small",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "this benchmark backend does not stream"


def test_escalating_share_of_prompts_is_near_the_setting() -> None:
    prompts = [f"question number {i}" for i in range(2000)]
    low = sum(instant_backend.small_probability(p, 0.25) < 0.5 for p in prompts)
    assert 0.2 < low / len(prompts) < 0.3
