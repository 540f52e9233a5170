"""Spillway's error tree and its mapping to OpenAI's error JSON.

Every error a client can cause is a `SpillwayError` with an HTTP status, an OpenAI error type,
the offending request field (`param`) and a short machine-readable `code`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError


class SpillwayError(Exception):
    status: int = 500
    error_type: str = "server_error"
    code: str = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequest(SpillwayError):
    status = 400
    error_type = "invalid_request_error"
    code = "invalid_request"


class Unauthorized(SpillwayError):
    status = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(SpillwayError):
    status = 403
    error_type = "permission_error"
    code = "forbidden"


class NotFound(SpillwayError):
    status = 404
    error_type = "invalid_request_error"
    code = "not_found"


class PayloadTooLarge(SpillwayError):
    status = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class TooManyRequests(SpillwayError):
    """429 with Retry-After: a tenant's rate limit (OpenAI's `rate_limit_exceeded`) or
    monthly budget (`insufficient_quota`, as OpenAI answers an exhausted quota)."""

    status = 429
    error_type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: int, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.retry_after_s = max(1, retry_after_s)
        if self.code == "insufficient_quota":
            self.error_type = "insufficient_quota"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class ServiceUnavailable(SpillwayError):
    status = 503
    error_type = "server_error"
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after_s: int = 5, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class GatewayTimeout(SpillwayError):
    status = 504
    error_type = "server_error"
    code = "timeout"


def _param_of(loc: tuple[Any, ...]) -> str:
    """('messages', 0, 'content') -> 'messages[0].content', as OpenAI names fields."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def from_validation_error(exc: ValidationError) -> InvalidRequest:
    """The first validation problem as an OpenAI-style 400, naming the field."""
    return from_error_details(exc.errors())


def from_error_details(errors: Sequence[Any]) -> InvalidRequest:
    """pydantic's (or FastAPI's) error list -> a 400 about the first problem, naming the field."""
    first = errors[0]
    loc = tuple(p for p in first["loc"] if p not in ("body", "query", "path", "header"))
    # Drop pydantic's union-branch markers such as 'str' / 'list[TextPart]'.
    loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in ("str",))))
    param = _param_of(loc) or None
    message = first["msg"]
    if first["type"] == "missing":
        message = "is required"
    if first["type"] == "extra_forbidden":
        message = "unknown field; remove it (see the API reference for the accepted fields)"
        return InvalidRequest(f"{param}: {message}", param=param, code="unknown_field")
    message = f"{param}: {message}" if param else message
    return InvalidRequest(message, param=param, code=f"invalid_{first['type']}")
