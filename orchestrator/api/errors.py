"""Errors to OpenAI's JSON: one response builder, the mapping of what a backend raised, and the
app's exception handlers (so every error, a bug included, leaves in OpenAI's shape)."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.backends.types import LLMRequestError, PromptTooLongError, UnknownAdapterError
from orchestrator.errors import (
    GatewayTimeout,
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
    SpillwayError,
    from_error_details,
)

__all__ = ["ClientClosed", "as_spillway_error", "error_response", "install_error_handlers"]


class ClientClosed(SpillwayError):
    """The client went away before the stream ended (nginx's 499); recorded, never sent."""

    status = 499
    error_type = "invalid_request_error"
    code = "client_closed_request"


def error_response(error: SpillwayError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers())


def as_spillway_error(exc: BaseException) -> SpillwayError:
    """Map what a backend raised (possibly wrapped by Ray) to a client-facing error."""
    cause = getattr(exc, "cause", None)  # Ray wraps a deployment's exception; use the original
    if isinstance(cause, BaseException):
        exc = cause
    if isinstance(exc, SpillwayError):
        return exc
    if isinstance(exc, UnknownAdapterError):
        return NotFound(str(exc), param=exc.param or "model", code="model_not_found")
    if isinstance(exc, PromptTooLongError):
        return InvalidRequest(str(exc), param=exc.param, code="context_length_exceeded")
    if isinstance(exc, LLMRequestError):
        return InvalidRequest(str(exc), param=exc.param)
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return GatewayTimeout("The query took longer than the configured request timeout.")
    return ServiceUnavailable(f"A model backend failed: {type(exc).__name__}.")


def install_error_handlers(app: FastAPI) -> None:
    """Starlette's own errors (404, 405), validation errors, ours, and bugs: OpenAI's shape."""

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(NotFound("No such endpoint.", code="unknown_url"))
        error = SpillwayError(str(exc.detail))
        error.status, error.error_type, error.code = exc.status_code, "invalid_request_error", None  # type: ignore[assignment]
        response = error_response(error)
        response.headers.update(exc.headers or {})  # e.g. 405's Allow
        return response

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        """A bug still answers in OpenAI's shape (Starlette logs the traceback)."""
        return error_response(SpillwayError(f"Internal error: {type(exc).__name__}."))

    @app.exception_handler(RequestValidationError)
    async def _params_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(from_error_details(exc.errors()))

    @app.exception_handler(SpillwayError)
    async def _spillway_error(_: Request, exc: SpillwayError) -> JSONResponse:
        return error_response(exc)
