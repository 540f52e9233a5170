"""What a client asks: OpenAI's chat completion request (the subset Spillway honours) and
Spillway's feedback request, validated by pydantic (every failure names the field)."""

from __future__ import annotations

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
    temperature: float | None = Field(
        None,
        ge=0,
        le=2,
        description="Sampling temperature; omitted: the serving engine's default "
        "(`engine.sampling.temperature`, as vLLM takes a model's generation config).",
    )
    top_p: float | None = Field(
        None, gt=0, le=1, description="Nucleus sampling mass; omitted: the engine's default."
    )
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
    route: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="The router label this query should have been routed to (a corrected "
        "route), optional; `spillway router train --from-ledger` learns from it.",
    )

    def resolved_score(self) -> float:
        if self.score is not None:
            return self.score
        if self.correct is not None:
            return 1.0 if self.correct else 0.0
        raise ValueError("send a score (0 to 1) or correct (true/false)")
