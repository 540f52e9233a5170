"""LLMDeployment: config validation and request errors (fake engine), then the real engine."""

from __future__ import annotations

import asyncio
import json
import pickle
import re

import pytest
from jinja2 import TemplateError
from pydantic import ValidationError

from orchestrator.backends.llm import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    LLMDeployment,
    LLMRequestError,
    PromptTooLongError,
    StreamDelta,
    UnknownAdapterError,
    VLLMEngineConfig,
    engine_kwargs,
)

pytest_plugins = ["tests.integration.tiny_models"]

MESSAGES = [{"role": "user", "content": "route the query to a small model"}]


class FakeTokenizer:
    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert tokenize is False and add_generation_prompt is True
        if messages[0]["role"] == "assistant":
            raise TemplateError("Conversation must start with a user message")
        return "".join(f"{m['role']}:{m['content']}\n" for m in messages) + "assistant:"

    def encode(self, text, add_special_tokens):
        return [ord(c) for c in text]


class FakeEngine:
    """Fails any request that reaches it: the errors below must be raised before."""

    def __init__(self, config):
        self.config, self.stopped = config, False

    def get_tokenizer(self):
        return FakeTokenizer()

    def generate(self, **kwargs):
        raise AssertionError(f"request reached the engine: {kwargs}")

    def shutdown(self):
        self.stopped = True


@pytest.fixture
def adapter_dir(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 8}))
    return str(tmp_path)


@pytest.fixture
def fake(adapter_dir) -> LLMDeployment:
    config = {"model": "m", "served_name": "small", "adapters": {"law": adapter_dir}}
    return LLMDeployment(config | {"max_model_len": 64}, engine_factory=FakeEngine)


def test_config_rejects_unknown_keys_and_bad_values():
    base = {"model": "m", "served_name": "small"}
    with pytest.raises(ValidationError, match="Extra inputs"):
        VLLMEngineConfig.model_validate(base | {"max_lora": 2})
    with pytest.raises(ValidationError, match="max_lora_rank"):
        VLLMEngineConfig.model_validate(base | {"max_lora_rank": 12})
    with pytest.raises(ValidationError, match="equals served_name"):
        VLLMEngineConfig.model_validate(base | {"adapters": {"small": "/x"}})
    with pytest.raises(ValidationError, match="max_cpu_loras"):
        VLLMEngineConfig.model_validate(base | {"max_loras": 4, "max_cpu_loras": 2})
    for key in ("dtype", "max_loras"):
        with pytest.raises(ValidationError, match="their own fields"):
            VLLMEngineConfig.model_validate(base | {"extra_engine_args": {key: 1}})
    with pytest.raises(ValidationError, match="dtype"):
        VLLMEngineConfig.model_validate(base | {"dtype": "fp32"})


def test_engine_kwargs():
    config = VLLMEngineConfig(model="m", served_name="s", kv_cache_gib=0.5, max_loras=2)
    kwargs = engine_kwargs(config)
    assert kwargs["kv_cache_memory_bytes"] == 1 << 29
    assert "enable_lora" not in kwargs
    config = config.model_copy(update={"adapters": {"a": "/a", "b": "/b", "c": "/c"}})
    kwargs = engine_kwargs(config)
    assert kwargs["enable_lora"] and kwargs["max_loras"] == 2 and kwargs["max_cpu_loras"] == 3


def test_bad_adapter_dirs_fail_before_the_engine_starts(tmp_path, adapter_dir):
    config = {"model": "m", "served_name": "s", "adapters": {"law": str(tmp_path / "nope")}}
    with pytest.raises(ValueError, match=r"adapter_config\.json not found"):
        LLMDeployment(config, engine_factory=FakeEngine)
    config |= {"adapters": {"law": adapter_dir}, "max_lora_rank": 1}
    with pytest.raises(ValueError, match="rank 8 > max_lora_rank 1"):
        LLMDeployment(config, engine_factory=FakeEngine)


def test_request_errors_are_typed_and_raised_before_the_engine(fake):
    with pytest.raises(UnknownAdapterError) as unknown:
        asyncio.run(fake.generate(GenerationRequest(messages=MESSAGES, adapter="poetry")))
    assert unknown.value.param == "model" and "poetry" in str(unknown.value)
    too_long = GenerationRequest(messages=MESSAGES, max_tokens=30)  # prompt is 48 "tokens"
    assert fake.count_prompt_tokens(MESSAGES) == 48
    with pytest.raises(PromptTooLongError) as error:
        asyncio.run(anext(fake.stream(too_long)))
    assert error.value.param == "messages" and isinstance(error.value, ValueError)
    restored = pickle.loads(pickle.dumps(error.value))
    assert type(restored) is PromptTooLongError and restored.param == "messages"
    with pytest.raises(LLMRequestError, match="max_tokens"):
        GenerationRequest(messages=MESSAGES, max_tokens=0)
    with pytest.raises(LLMRequestError, match="chat template rejected") as template:
        fake.count_prompt_tokens([{"role": "assistant", "content": "hi"}])
    assert template.value.param == "messages"


def test_requests_without_sampling_get_the_engines_defaults(adapter_dir):
    sampling = {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05}
    config = {"model": "m", "served_name": "small", "sampling": sampling}
    llm = LLMDeployment(config, engine_factory=FakeEngine)
    unset = llm._prepare(GenerationRequest(messages=MESSAGES, temperature=None, top_p=None),
                         delta=False)["sampling_params"]  # fmt: skip
    assert (unset.temperature, unset.top_p, unset.top_k) == (0.7, 0.8, 20)
    assert unset.repetition_penalty == 1.05
    greedy = llm._prepare(GenerationRequest(messages=MESSAGES, temperature=0.0, top_p=1.0),
                          delta=False)["sampling_params"]  # fmt: skip
    assert (greedy.temperature, greedy.top_p) == (0.0, 1.0)  # greedy: vLLM drops top_k


def test_describe_shutdown_and_picklable_data(fake):
    assert fake.describe() == {
        "served_name": "small",
        "adapters": ["law"],
        "serving": {"law": "law"},  # no adapter registry: the config's names, unversioned
        "max_model_len": 64,
    }
    engine = fake._engine
    fake.shutdown()
    fake.shutdown()
    assert engine.stopped
    with pytest.raises(RuntimeError, match="shut down"):
        asyncio.run(fake.check_health())
    for value in (
        GenerationRequest(messages=[ChatMessage("user", "hi")], adapter="law"),
        GenerationResult("a", [1], [-0.1], 3, 1, "stop", "law"),
        StreamDelta("a", [-0.1], None, 3, 1),
    ):
        assert pickle.loads(pickle.dumps(value)) == value


# -- the real engine ----------------------------------------------------------------------


@pytest.mark.slow
def test_generate_returns_sampled_logprobs_and_usage(tiny_llm, run):
    result = run(tiny_llm.generate(GenerationRequest(messages=MESSAGES, max_tokens=8)))
    assert result.model == "tiny-base" and result.finish_reason == "length"
    assert result.completion_tokens == len(result.token_ids) == len(result.token_logprobs) == 8
    assert all(lp <= 0 for lp in result.token_logprobs)
    assert result.prompt_tokens == tiny_llm.count_prompt_tokens(MESSAGES)
    by_name = GenerationRequest(messages=MESSAGES, adapter="tiny-base", max_tokens=8)
    assert run(tiny_llm.generate(by_name)).token_ids == result.token_ids


@pytest.mark.slow
@pytest.mark.parametrize("adapter", [None, "ad1"])
def test_stream_text_equals_generate_text(tiny_llm, run, adapter):
    request = GenerationRequest(messages=MESSAGES, adapter=adapter, max_tokens=12)
    whole = run(tiny_llm.generate(request))

    async def collect():
        return [delta async for delta in tiny_llm.stream(request)]

    deltas = run(collect())
    assert "".join(d.text for d in deltas) == whole.text
    assert [d.finish_reason for d in deltas[:-1]] == [None] * (len(deltas) - 1)
    last = deltas[-1]
    assert (last.finish_reason, last.prompt_tokens, last.completion_tokens) == (
        whole.finish_reason,
        whole.prompt_tokens,
        whole.completion_tokens,
    )
    logprobs = [lp for d in deltas for lp in d.token_logprobs]
    assert logprobs == pytest.approx(whole.token_logprobs, abs=1e-5)


@pytest.mark.slow
def test_closing_a_stream_early_aborts_the_engine_request(tiny_llm, run):
    request = GenerationRequest(messages=MESSAGES, max_tokens=200)

    async def first_delta_then_close():
        deltas = tiny_llm.stream(request)
        first = await anext(deltas)
        await deltas.aclose()
        return first

    assert run(first_delta_then_close()).finish_reason is None
    assert tiny_llm._engine.get_num_unfinished_requests() == 0


@pytest.mark.slow
def test_stop_strings_and_seeds_reach_the_engine(tiny_llm, run):
    whole = run(tiny_llm.generate(GenerationRequest(messages=MESSAGES, max_tokens=16)))
    word = re.search(r"(?<=.)[a-z]{3,}", whole.text)
    assert word, whole.text
    stopped = GenerationRequest(messages=MESSAGES, max_tokens=16, stop=[word.group()])
    result = run(tiny_llm.generate(stopped))
    assert (result.text, result.finish_reason) == (whole.text[: word.start()], "stop")

    sampled = GenerationRequest(messages=MESSAGES, max_tokens=16, temperature=1.0, seed=7)
    first, second = run(tiny_llm.generate(sampled)), run(tiny_llm.generate(sampled))
    assert first.token_ids == second.token_ids != whole.token_ids


@pytest.mark.slow
def test_errors_before_the_real_engine(tiny_llm, run, monkeypatch):
    def refuse(**kwargs):
        raise AssertionError("request reached the engine")

    monkeypatch.setattr(tiny_llm._engine, "generate", refuse)
    with pytest.raises(UnknownAdapterError):
        run(tiny_llm.generate(GenerationRequest(messages=MESSAGES, adapter="nope")))
    limit = tiny_llm.config.max_model_len - tiny_llm.count_prompt_tokens(MESSAGES)
    with pytest.raises(PromptTooLongError):
        run(tiny_llm.generate(GenerationRequest(messages=MESSAGES, max_tokens=limit + 1)))


@pytest.mark.slow
def test_health_and_describe(tiny_llm, run):
    run(tiny_llm.check_health())
    assert tiny_llm.describe() == {
        "served_name": "tiny-base",
        "adapters": ["ad0", "ad1", "ad2"],
        "serving": {"ad0": "ad0", "ad1": "ad1", "ad2": "ad2"},
        "max_model_len": 256,
    }
