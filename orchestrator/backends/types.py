"""What goes in and out of a backend: LLM requests, results, stream deltas and request errors,
and the router's `RouteResult`.

Plain, picklable classes shared by ``LLMDeployment`` (vLLM), ``RemoteLLMDeployment``, the router
and the query path; they cross Ray handles. ``orchestrator.backends.llm`` re-exports all of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "ChatMessage",
    "GenerationRequest",
    "GenerationResult",
    "LLMRequestError",
    "PromptTooLongError",
    "RouteResult",
    "StreamDelta",
    "UnknownAdapterError",
]


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
    """One chat completion for the engine; ``adapter`` None means the base model.

    ``temperature`` / ``top_p`` None: the engine's own defaults (a client that sends none)."""

    messages: list[ChatMessage] | list[dict[str, Any]]
    adapter: str | None = None
    max_tokens: int = 256
    temperature: float | None = 0.0
    top_p: float | None = 1.0
    stop: list[str] | None = None
    seed: int | None = None
    request_id: str | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise LLMRequestError("max_tokens must be at least 1", "max_tokens")
        if self.temperature is not None and self.temperature < 0:
            raise LLMRequestError("temperature must be >= 0", "temperature")
        if self.top_p is not None and not 0 < self.top_p <= 1:
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


@dataclass(frozen=True, slots=True)
class RouteResult:
    """A routing decision and the artifact version that made it (recorded in the ledger)."""

    label: str
    probability: float
    runner_up: str | None
    runner_up_probability: float
    abstained: bool
    artifact_version: str
    small_enough_probability: float | None = None
    """The difficulty scorer's P(the small model is enough), when one is configured."""

    @property
    def route(self) -> str | None:
        """The label to route to, or None to use the base model."""
        return None if self.abstained else self.label

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
