"""Request and response shapes: OpenAI's chat completion API plus Spillway's extension."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

AUTO_MODEL = "auto"


IGNORED = "Accepted for OpenAI compatibility and ignored."


def _encodable(text: str) -> str:
    """Reject lone surrogates ('\\ud800' in JSON): they cannot reach a tokenizer as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"contains an unpaired surrogate at position {exc.start}") from None
    return text


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"] = Field(description="Only text parts are supported.")
    text: str = Field(description="The text of this part.")

    @field_validator("text")
    @classmethod
    def _text_encodable(cls, text: str) -> str:
        return _encodable(text)


class ChatMessageIn(BaseModel):
    """One message of the conversation.

    Fields OpenAI clients echo back in a conversation's history (name, refusal, tool_calls…)
    are accepted and ignored; any other field is a 400 naming it."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant", "developer"] = Field(
        description="Who said it; 'developer' is treated as 'system'."
    )
    content: str | list[TextPart] = Field(description="Text, or a list of text parts.")
    name: str | None = Field(None, description=IGNORED)
    refusal: str | None = Field(None, description=IGNORED)
    tool_calls: list[Any] | None = Field(None, description=IGNORED)
    function_call: Any = Field(None, description=IGNORED)
    audio: Any = Field(None, description=IGNORED)
    annotations: list[Any] | None = Field(None, description=IGNORED)

    @field_validator("content")
    @classmethod
    def _content_encodable(cls, content: str | list[TextPart]) -> str | list[TextPart]:
        return _encodable(content) if isinstance(content, str) else content

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)

    def as_dict(self) -> dict[str, str]:
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": self.text()}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = Field(False, description="Send usage on the final chunk.")
    include_obfuscation: bool | None = Field(None, description=IGNORED)


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's request that Spillway honours.

    OpenAI's other request fields (logit_bias, presence_penalty, response_format…) are accepted
    and ignored, so the official clients keep working; any field OpenAI does not define is a
    400 naming it (a typo such as `max_token` must not silently fall back to a default).
    Fields that would change the answer's meaning in a way Spillway cannot honour (n > 1,
    tools) are rejected.
    """

    model_config = ConfigDict(extra="forbid")
    model: str = Field(
        min_length=1,
        max_length=256,
        pattern=r"^[^\x00-\x1f]+$",
        description="'auto', an adapter name or a model name.",
    )
    messages: list[ChatMessageIn] = Field(min_length=1, description="The conversation so far.")
    max_tokens: int | None = Field(None, ge=1, description="Most completion tokens.")
    max_completion_tokens: int | None = Field(None, ge=1, description="Alias of max_tokens.")
    temperature: float = Field(1.0, ge=0, le=2, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    n: int = Field(1, ge=1, le=1, description="Only one choice is supported.")
    stream: bool = Field(False, description="Server-sent events instead of one JSON body.")
    stream_options: StreamOptions | None = Field(None, description="Streaming options.")
    stop: str | list[str] | None = Field(None, description="Stop sequences.")
    seed: int | None = Field(None, description="Sampling seed.")
    user: str | None = Field(None, description="End-user id (recorded nowhere).")
    tools: list[Any] | None = Field(None, description="Not supported; must be absent or empty.")
    tool_choice: Any = Field(None, description=IGNORED)
    parallel_tool_calls: bool | None = Field(None, description=IGNORED)
    functions: list[Any] | None = Field(None, description="Not supported; must be absent or empty.")
    function_call: Any = Field(None, description=IGNORED)
    logit_bias: dict[str, Any] | None = Field(None, description=IGNORED)
    logprobs: bool | None = Field(None, description=IGNORED)
    top_logprobs: int | None = Field(None, description=IGNORED)
    presence_penalty: float | None = Field(None, description=IGNORED)
    frequency_penalty: float | None = Field(None, description=IGNORED)
    response_format: Any = Field(None, description=IGNORED)
    service_tier: str | None = Field(None, description=IGNORED)
    store: bool | None = Field(None, description=IGNORED)
    metadata: dict[str, Any] | None = Field(None, description=IGNORED)
    reasoning_effort: str | None = Field(None, description=IGNORED)
    modalities: list[Any] | None = Field(None, description=IGNORED)
    audio: Any = Field(None, description=IGNORED)
    prediction: Any = Field(None, description=IGNORED)
    prompt_cache_key: str | None = Field(None, description=IGNORED)
    safety_identifier: str | None = Field(None, description=IGNORED)
    verbosity: str | None = Field(None, description=IGNORED)
    web_search_options: Any = Field(None, description=IGNORED)

    @field_validator("tools", "functions")
    @classmethod
    def _no_tools(cls, tools: list[Any] | None) -> list[Any] | None:
        if tools:
            raise ValueError("tool calling is not supported")
        return tools

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > 4:
            raise ValueError("at most 4 stop sequences")
        for text in [stop] if isinstance(stop, str) else stop or []:
            _encodable(text)
        return stop

    def stop_list(self) -> list[str] | None:
        if self.stop is None:
            return None
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class FeedbackRequest(BaseModel):
    """A judgement of one answer: a score in [0, 1], or correct/incorrect (1 or 0)."""

    model_config = ConfigDict(extra="forbid")
    query_id: str = Field(min_length=1, description="The query's id (x-spillway-query-id).")
    score: float | None = Field(None, ge=0, le=1, description="Quality of the answer, 0 to 1.")
    correct: bool | None = Field(None, description="Whether the answer was right.")
    comment: str | None = Field(None, max_length=2000, description="Free text, optional.")

    def resolved_score(self) -> float:
        if self.score is not None:
            return self.score
        if self.correct is not None:
            return 1.0 if self.correct else 0.0
        raise ValueError("send a score (0 to 1) or correct (true/false)")


class SpillwayInfo(BaseModel):
    """Which model answered and why; added to every response as `spillway`."""

    query_id: str
    route: str | None
    route_probability: float | None
    router_version: str | None = None
    adapter: str | None
    answered_by: str
    confidence: float | None
    confidence_signal: str | None = None
    threshold: float | None = None
    escalated: bool
    reason: str
    cost_usd: str
    baseline_cost_usd: str
    degraded: bool = False  # the small answer, returned because the large model failed
    faults: list[str] = []  # deployments that failed for this query: router, small, large

    def headers(self) -> dict[str, str]:
        """The same facts as `x-spillway-*` response headers."""
        values: dict[str, Any] = {
            "query-id": self.query_id,
            "route": self.route or "",
            "route-probability": _fmt(self.route_probability),
            "adapter": self.adapter or "",
            "answered-by": self.answered_by,
            "confidence": _fmt(self.confidence),
            "escalated": str(self.escalated).lower(),
            "reason": self.reason,
            "cost-usd": self.cost_usd,
            "degraded": str(self.degraded).lower(),
            "faults": ",".join(self.faults),
        }
        return {f"x-spillway-{key}": str(value) for key, value in values.items()}


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def completion_body(
    *,
    completion_id: str,
    model: str,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
    info: SpillwayInfo,
) -> dict[str, Any]:
    """A non-streaming chat.completion object."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "spillway": info.model_dump(),
    }


def chunk_body(
    *,
    completion_id: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One chat.completion.chunk object of a stream."""
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }
    if extra:
        body.update(extra)
    return body
