"""OpenAI's chat-completions wire format, in Spillway's terms.

Request messages, answers (``GenerationResult``), SSE streams (``StreamDelta``) and error
bodies (``LLMRequestError`` subclasses or ``RemoteLLMError``): the parsing and error mapping
behind ``RemoteLLMDeployment``, without any I/O. ``orchestrator.backends.remote`` re-exports
the errors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx

from orchestrator.backends.types import (
    ChatMessage,
    GenerationResult,
    LLMRequestError,
    PromptTooLongError,
    StreamDelta,
    UnknownAdapterError,
)

__all__ = [
    "RemoteLLMError",
    "RemoteTimeoutError",
    "chat_message",
    "error_for",
    "json_object",
    "parse_result",
    "parse_stream",
]

# The remote backend's logger: its warnings keep the name they had before this module split.
logger = logging.getLogger("orchestrator.backends.remote")

_CONTEXT_HINTS = ("context length", "context window", "maximum context", "too many tokens")


class RemoteLLMError(Exception):
    """The remote server failed or could not be used; not the client's fault (a 503)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.status = message, status

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across Ray handles
        return (type(self), (self.message, self.status))


class RemoteTimeoutError(RemoteLLMError, TimeoutError):
    """The server sent nothing for ``timeout_s`` (the ingress answers 504)."""


def chat_message(message: ChatMessage | dict[str, Any]) -> dict[str, Any]:
    if isinstance(message, ChatMessage):
        return {"role": message.role, "content": message.content}
    return dict(message)


def json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def error_for(
    response: httpx.Response, model: str, *, served_name: str, api_key_env: str | None, where: str
) -> Exception:
    """The error for a non-200 answer about ``model``; ``where`` names the server."""
    status = response.status_code
    message, param, code = _error_fields(response)
    if status == 404 and model != served_name and "model" in f"{param}{message}":
        return UnknownAdapterError(f"{where} does not serve {model!r}: {message}")
    if status == 400 and _is_context_error(message, code):
        return PromptTooLongError(message)
    if status in (400, 413, 422):
        return LLMRequestError(message, param if isinstance(param, str) else None)
    if status in (401, 403):
        key = f"the key in ${api_key_env}" if api_key_env else "no key"
        return RemoteLLMError(f"{where} refused {key} ({status})", status)
    return RemoteLLMError(f"{where} answered {status}: {message}", status)


def _error_fields(response: httpx.Response) -> tuple[str, Any, Any]:
    """(message, param, code) from OpenAI's ``{"error": {...}}`` or a flat error object."""
    data = json_object(response)
    nested = data.get("error")
    error: dict[str, Any] = nested if isinstance(nested, dict) else data
    message = error.get("message") or response.text[:500] or response.reason_phrase
    return str(message), error.get("param"), error.get("code")


def _is_context_error(message: str, code: Any) -> bool:
    return code == "context_length_exceeded" or any(h in message.lower() for h in _CONTEXT_HINTS)


def _logprobs(choice: dict[str, Any]) -> list[float]:
    content = (choice.get("logprobs") or {}).get("content") or []
    return [float(item["logprob"]) for item in content]


def parse_result(data: Any, model: str) -> GenerationResult:
    try:
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
        logprobs = _logprobs(choice)
        usage = data.get("usage") or {}
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise RemoteLLMError(f"unexpected chat completion from the remote server: {exc!r}") from exc
    if not usage:
        logger.warning("remote answer for %r carried no usage; prompt tokens unknown", model)
    completion_tokens = int(usage.get("completion_tokens", len(logprobs)))
    if completion_tokens and not logprobs:
        raise RemoteLLMError("the remote server returned no logprobs (the cascade needs them)")
    return GenerationResult(
        text=text,
        token_ids=[],
        token_logprobs=logprobs,
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=completion_tokens,
        finish_reason=choice.get("finish_reason") or "stop",
        model=model,
    )


async def parse_stream(lines: AsyncIterator[str], model: str) -> AsyncIterator[StreamDelta]:
    """StreamDeltas from SSE lines. The finishing delta is held until the usage event (it
    carries the final counts); earlier deltas carry running completion counts only."""
    produced, usage, held = 0, None, None
    async for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line.removeprefix("data:").strip()
        if payload == "[DONE]":
            break
        event = _event(payload)
        usage = event.get("usage") or usage
        for text, logprobs, finish in _choices(event.get("choices") or []):
            produced += len(logprobs)
            delta = StreamDelta(text, logprobs, finish, 0, produced)
            if finish:
                held = delta
            elif text or logprobs:
                yield delta
    if held is None:
        raise RemoteLLMError(f"the remote stream for {model!r} ended before the answer did")
    if usage:
        held.prompt_tokens = int(usage.get("prompt_tokens", 0))
        held.completion_tokens = int(usage.get("completion_tokens", produced))
    else:
        logger.warning("remote stream for %r carried no usage; prompt tokens unknown", model)
    yield held


def _event(payload: str) -> dict[str, Any]:
    try:
        event = json.loads(payload)
    except ValueError as exc:
        raise RemoteLLMError(f"malformed event in the remote stream: {payload[:200]!r}") from exc
    if not isinstance(event, dict):
        raise RemoteLLMError(f"malformed event in the remote stream: {payload[:200]!r}")
    if "error" in event:  # vLLM reports failures mid-stream as an event
        error = event["error"] if isinstance(event["error"], dict) else {"message": event["error"]}
        raise RemoteLLMError(f"the remote stream failed: {error.get('message')}")
    return event


def _choices(choices: Iterable[Any]) -> Iterable[tuple[str, list[float], str | None]]:
    for choice in choices:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            text = (choice.get("delta") or {}).get("content") or ""
            yield text, _logprobs(choice), choice.get("finish_reason")
