"""How to build one vLLM engine: ``VLLMEngineConfig`` and the ``AsyncEngineArgs`` it makes.

No vLLM import: the serve config validates these without loading vLLM. ``orchestrator.backends.llm``
re-exports ``VLLMEngineConfig`` and ``engine_kwargs``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["GIB", "DType", "LoRARank", "SamplingDefaults", "VLLMEngineConfig", "engine_kwargs"]

LoRARank = Literal[1, 8, 16, 32, 64, 128, 256, 320, 512]  # vllm.config.lora.MaxLoRARanks
DType = Literal["auto", "float32", "bfloat16", "float16"]
GIB = 1 << 30
# Engine arguments the config sets through its own fields (not through extra_engine_args).
_LORA_ARGS = ("enable_lora", "max_loras", "max_lora_rank", "max_cpu_loras")


class SamplingDefaults(BaseModel):
    """Sampling for requests that leave it unset: a model's recommended settings, as vLLM's
    own server takes them from the model's generation config (Spillway's local models are
    converted from GGUF, which carries none). The defaults are the OpenAI API's."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(1.0, ge=0, le=2, description="When a request sends none.")
    top_p: float = Field(1.0, gt=0, le=1, description="When a request sends none.")
    top_k: int = Field(
        0, ge=0, description="Sample from the k likeliest tokens only; 0 = all (every request)."
    )
    repetition_penalty: float = Field(
        1.0, gt=0, le=2, description="Above 1 discourages repeating tokens (every request)."
    )


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
    sampling: SamplingDefaults = Field(
        default_factory=SamplingDefaults,
        description="Sampling defaults for requests that set none (temperature, top_p) and "
        "the engine-side settings the OpenAI API has no field for (top_k, repetition_penalty).",
    )
    warm_up_tokens: int = Field(
        8,
        ge=0,
        le=64,
        description="Before the replica reports ready, generate this many tokens with the base "
        "model and with each adapter, so the first real request does not pay for kernel set-up "
        "and adapter loading (15 s on this CPU). 0 skips the warm-up.",
    )
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
