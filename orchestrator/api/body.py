"""Request bodies: read within the size limit, decode, validate; every failure is a 4xx that
says what is wrong (and names the field)."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from orchestrator.errors import InvalidRequest, PayloadTooLarge, from_validation_error
from orchestrator.query.request import ChatCompletionRequest

__all__ = ["parse_chat_request", "parse_model", "read_body", "requested"]

ModelT = TypeVar("ModelT", bound=BaseModel)
# A refused request's `model` is recorded up to this many characters.
MODEL_TEXT_MAX = 200


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is over the limit of {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is over the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def requested(raw: bytes) -> tuple[str, bool]:
    """What a chat body asks for (`model`, `stream`) as far as it says, before and whatever
    its validation: the ledger row of a refused request records it. A model that is not a
    string is recorded as its JSON text; a body that is not a JSON object asks for ''."""
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return "", False
    if not isinstance(data, dict):
        return "", False
    model = data.get("model", "")
    if not isinstance(model, str):
        model = json.dumps(model)[:MODEL_TEXT_MAX]
    return model[:MODEL_TEXT_MAX], data.get("stream") is True


def parse_chat_request(raw: bytes) -> ChatCompletionRequest:
    """Decode and validate a chat completion body; every failure is a 400 naming the field."""
    return parse_model(ChatCompletionRequest, raw)


def parse_model(model: type[ModelT], raw: bytes) -> ModelT:
    """Decode a JSON object body and validate it as `model`; failures are 400s."""
    if not raw.strip():
        raise InvalidRequest("The request body is empty; send a JSON object.", code="empty_body")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"The request body is not valid UTF-8 (byte {exc.start}).", code="invalid_utf8"
        ) from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, a 5,000-digit number…
        raise InvalidRequest(
            f"The request body is not valid JSON{_json_problem(exc)}.", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _json_problem(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f" at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, RecursionError):
        return " (nested too deeply)"
    return f" ({str(exc).split(';')[0]})"
