"""The OpenAPI document served at /openapi.json.

The chat and feedback routes read the raw body themselves (size limit, UTF-8, nesting depth
before pydantic), so FastAPI cannot see their request models; this module adds them, the
bearer security scheme and the error responses (OpenAI's error shape) to FastAPI's document.
The document itself is served without a key: it holds no data, like /healthz.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from cascade.policy import CascadePolicy
from orchestrator.api.admin import PREFIX as ADMIN_PREFIX
from orchestrator.api.admin import AddAdapter, Canary, Promote
from orchestrator.api.admin_artifact import ROUTER_PATH, RouterArtifactBody
from orchestrator.api.admin_cascade import CASCADE_PATH
from orchestrator.query.request import ChatCompletionRequest, FeedbackRequest

REF = "#/components/schemas/{model}"
SECURITY_SCHEME = "bearerAuth"
# Operations that need no key; everything else asks for `Authorization: Bearer <key>`.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
ERROR_TEXT = {
    400: "Invalid request: bad JSON, a field out of range, an unknown field.",
    401: "Missing or unknown API key.",
    403: "The key may not use this endpoint (the stats and the admin API need an admin key).",
    404: "No such model, adapter, adapter version, query or endpoint (or a router that "
    "cannot be replaced while it runs).",
    413: "The request body is over the configured limit.",
    429: "Rate limit or budget exceeded.",
    503: "A model backend is unavailable; retry after Retry-After seconds.",
    504: "The query took longer than the configured request timeout.",
}
BODY_MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("/v1/chat/completions", "post"): ChatCompletionRequest,
    ("/v1/feedback", "post"): FeedbackRequest,
    (ADMIN_PREFIX, "post"): AddAdapter,
    (ADMIN_PREFIX + "/{name}/promote", "post"): Promote,
    (ADMIN_PREFIX + "/{name}/canary", "post"): Canary,
    (CASCADE_PATH, "put"): CascadePolicy,
    (ROUTER_PATH, "put"): RouterArtifactBody,
}
AUTHED_ERRORS = (400, 401, 429)


class ErrorDetail(BaseModel):
    """OpenAI's error object."""

    model_config = ConfigDict(extra="forbid")
    message: str = Field(description="What went wrong and how to fix the request.")
    type: str = Field(description="OpenAI's error type, e.g. invalid_request_error.")
    param: str | None = Field(description="The offending request field, if one.")
    code: str | None = Field(description="A short machine-readable code.")


class ErrorResponse(BaseModel):
    """Every error Spillway returns, whatever the status."""

    model_config = ConfigDict(extra="forbid")
    error: ErrorDetail = Field(description="The error.")


def error_statuses(path: str, method: str) -> tuple[int, ...]:
    """The error statuses an operation can answer with."""
    if path == "/readyz":
        return (503,)
    if path in PUBLIC_PATHS:
        return ()
    statuses = {*AUTHED_ERRORS}
    if path.startswith("/v1/stats/"):
        statuses.add(403)
    if path.startswith(ADMIN_PREFIX):
        statuses |= {403, 404}
    if path == CASCADE_PATH:
        statuses.add(403)
    if path == ROUTER_PATH:
        statuses |= {403, 404}
    if (path, method) in BODY_MODELS:
        statuses |= {413} if path == CASCADE_PATH else {404, 413}
    if path == "/v1/chat/completions":
        statuses |= {503, 504}
    if path == "/v1/queries/{query_id}":
        statuses.add(404)
    return tuple(sorted(statuses))


def _add_schemas(document: dict[str, Any], *models: type[BaseModel]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in models:
        schema = model.model_json_schema(ref_template=REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _describe_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)  # FastAPI's default; Spillway answers 400 in OpenAI's shape
    for status in error_statuses(path, method):
        responses[str(status)] = {
            "description": ERROR_TEXT[status],
            "content": {"application/json": {"schema": _ref(ErrorResponse)}},
        }
    model = BODY_MODELS.get((path, method))
    if model is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(model)}},
        }
    if path == "/v1/chat/completions":
        ok = responses.setdefault("200", {"description": "The completion."})
        ok.setdefault("content", {})["text/event-stream"] = {
            "schema": {"type": "string", "description": "OpenAI's chunk stream (stream=true)."}
        }
    if path == "/metrics":
        responses["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}
    if path not in PUBLIC_PATHS:
        operation["security"] = [{SECURITY_SCHEME: []}]


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus request bodies, security and error responses."""
    document = get_openapi(
        title=app.title,
        version=app.version,
        description="OpenAI-compatible chat completions routed to LoRA adapters on a small "
        "model, escalated to a large one on low confidence; every query in a cost ledger.",
        routes=app.routes,
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):  # only the dropped 422s used them
        schemas.pop(unused, None)
    _add_schemas(document, ErrorResponse, *BODY_MODELS.values())
    document["components"]["securitySchemes"] = {
        SECURITY_SCHEME: {"type": "http", "scheme": "bearer", "description": "The API key."}
    }
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            _describe_operation(path, method, operation)
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve `build_openapi(app)` at /openapi.json (computed once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
