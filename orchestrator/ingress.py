"""Thin FastAPI routes over the Gateway, and the Serve ingress deployment class."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.dashboard import dashboard_router
from orchestrator.dashboard.tenants import tenants_router
from orchestrator.errors import (
    GatewayTimeout,
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
    SpillwayError,
    from_error_details,
)
from orchestrator.gateway import Gateway, parse_model, read_body
from orchestrator.ledger.export import jsonable_row
from orchestrator.llm import (
    GenerationRequest,
    GenerationResult,
    LLMRequestError,
    PromptTooLongError,
    StreamDelta,
    UnknownAdapterError,
)
from orchestrator.metrics import observe_ledger, render_metrics
from orchestrator.openapi import install_openapi
from orchestrator.protocol import (
    ChatCompletionRequest,
    FeedbackRequest,
    chunk_body,
    completion_body,
)
from orchestrator.replica_http import ReplicaHTTPServer
from orchestrator.service import Backends, QueryTrace, new_query_id
from orchestrator.settings import HTTP_SERVER_INGRESS


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


def create_app(gateway: Gateway) -> FastAPI:
    """The HTTP surface. Every error leaves in OpenAI's error shape."""
    app = FastAPI(title="Spillway", version="0.1.0", docs_url=None, redoc_url=None)

    install_openapi(app)

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

    app.include_router(
        dashboard_router(
            gateway.config.ledger.resolved_url(),
            authorize=gateway.authenticate,
            policy=gateway.config.cascade,
        )
    )

    app.include_router(
        tenants_router(gateway.usage_source, gateway.config.tenants, authorize=gateway.authenticate)
    )

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus exposition (no key: scrapers run inside the cluster's network)."""
        observe_ledger(gateway.ledger.stats)
        body, content_type = render_metrics()
        return Response(body, media_type=content_type)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        """200 when the router and both models answer a health check within 10 s, else 503."""
        check = gateway.service.backends.ready
        try:
            details = await asyncio.wait_for(check(), 10) if check else {}
        except Exception as exc:
            error = ServiceUnavailable(f"Not ready: {type(exc).__name__}: {exc}")
            return error_response(error)
        return JSONResponse({"status": "ready", **details})

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        tenant = gateway.authenticate(request)
        return {"object": "list", "data": model_cards(gateway, tenant.name)}

    @app.get("/v1/queries/{query_id}")
    async def query_row(query_id: str, request: Request) -> dict[str, Any]:
        tenant = gateway.authenticate(request)
        row = await asyncio.to_thread(gateway.ledger.get, query_id)
        if row is None or (row["tenant"] != tenant.name and not tenant.admin):
            raise NotFound(f"No query with id '{query_id}'.", param="query_id")
        return jsonable_row(row)

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> dict[str, Any]:
        """Store a judgement of an answer; the cascade's calibration learns from these."""
        tenant = gateway.authenticate(request)
        body = await read_body(request, gateway.config.limits.max_body_bytes)
        parsed = parse_model(FeedbackRequest, body)
        try:
            score = parsed.resolved_score()
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="score") from None
        row = await asyncio.to_thread(gateway.ledger.get, parsed.query_id)
        if row is None or (row["tenant"] != tenant.name and not tenant.admin):
            raise NotFound(f"No query with id '{parsed.query_id}'.", param="query_id")
        feedback_id = await asyncio.to_thread(
            gateway.ledger.add_feedback,
            parsed.query_id,
            score,
            correct=parsed.correct,
            comment=parsed.comment,
        )
        return {"id": feedback_id, "query_id": parsed.query_id, "score": score}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        tenant = gateway.authenticate(request)
        trace = QueryTrace(new_query_id(), tenant.name, model_requested="", stream=False)
        try:
            await gateway.admit(tenant)  # before the body is read: a refusal runs nothing
            parsed = await gateway.read_chat_request(request)
            trace.model_requested, trace.stream = parsed.model, parsed.stream
            timeout = gateway.config.server.request_timeout_s
            if parsed.stream:
                return await asyncio.wait_for(_open_stream(gateway, parsed, trace), timeout)
            return await asyncio.wait_for(_complete(gateway, parsed, trace), timeout)
        except Exception as exc:  # every failure becomes a clean error and a ledger row
            error = as_spillway_error(exc)
            _record_failure(gateway, trace, error)
            response = error_response(error)
            response.headers["x-spillway-query-id"] = trace.query_id
            return response

    return app


def model_cards(gateway: Gateway, tenant: str) -> list[dict[str, Any]]:
    """The models `tenant` may name: never another tenant's private adapters."""
    created = int(time.time())
    return [
        {
            "id": card.name,
            "object": "model",
            "created": created,
            "owned_by": "spillway",
            "spillway_role": card.role,
            "parent": card.parent,
        }
        for card in gateway.service.catalog.models_of(tenant)
    ]


def _record_failure(gateway: Gateway, trace: QueryTrace, error: SpillwayError) -> None:
    if trace.cost is None and (trace.small_usage or trace.large_usage):
        gateway.service.settle(trace)  # attempts that ran are billed even when the query fails
    trace.latency_ms.setdefault("total", (time.perf_counter() - trace.started) * 1000.0)
    gateway.record(trace, status=error.status, error=error)


async def _complete(gateway: Gateway, parsed: ChatCompletionRequest, trace: QueryTrace) -> Response:
    result = await gateway.service.complete(parsed, trace)
    info = trace.info()
    body = completion_body(
        completion_id="chatcmpl-" + trace.query_id.removeprefix("q-"),
        model=result.model,
        text=result.text,
        finish_reason=result.finish_reason,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        info=info,
    )
    gateway.record(trace, status=200)
    return JSONResponse(body, headers=info.headers())


async def _open_stream(
    gateway: Gateway, parsed: ChatCompletionRequest, trace: QueryTrace
) -> Response:
    """Decide before the first byte (the small answer is held), then stream the accepted one."""
    deltas = await gateway.service.open_stream(parsed, trace)
    headers = {k: v for k, v in trace.info().headers().items() if k != "x-spillway-cost-usd"}
    events = _sse_events(gateway, parsed, trace, deltas)
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


class ClientClosed(SpillwayError):
    """The client went away before the stream ended (nginx's 499); recorded, never sent."""

    status = 499
    error_type = "invalid_request_error"
    code = "client_closed_request"


async def _sse_events(
    gateway: Gateway,
    parsed: ChatCompletionRequest,
    trace: QueryTrace,
    deltas: AsyncIterator[StreamDelta],
) -> AsyncIterator[str]:
    """OpenAI's chunk stream; the ledger row is written however the stream ends."""
    completion_id = "chatcmpl-" + trace.query_id.removeprefix("q-")
    created = int(time.time())

    def event(delta: dict[str, Any], **kwargs: Any) -> str:
        body = chunk_body(
            completion_id=completion_id,
            model=trace.answered_by,
            created=created,
            delta=delta,
            **kwargs,
        )
        return f"data: {json.dumps(body)}\n\n"

    last: StreamDelta | None = None
    recorded = False
    try:
        yield event({"role": "assistant", "content": ""})
        async for delta in deltas:
            last = delta
            if delta.text:
                yield event({"content": delta.text})
        prompt = last.prompt_tokens if last else 0
        completion = last.completion_tokens if last else 0
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        extra = {"spillway": trace.info().model_dump(), "usage": usage}
        finish = last.finish_reason if last and last.finish_reason else "stop"
        yield event({}, finish_reason=finish, extra=extra)
        yield "data: [DONE]\n\n"
        gateway.record(trace, status=200)
        recorded = True
    except Exception as exc:  # headers are gone: report in-band, record, end the stream
        error = as_spillway_error(exc)
        _record_failure(gateway, trace, error)
        recorded = True
        yield f"data: {json.dumps(error.body())}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        if not recorded:  # cancelled: the client disconnected mid-stream
            _record_failure(gateway, trace, ClientClosed("The client closed the stream."))


class SpillwayIngress:
    """The Serve ingress: one Gateway per replica; handles to the router and both models.

    The builder wraps it with `serve.ingress()` and `serve.deployment`; the FastAPI app is
    built on the replica (`__serve_build_asgi_app__`), so nothing is pickled but the config.
    With `server.http_server: ingress` the replica also serves that app over HTTP itself
    (replica_http.py) and Serve's proxy is not started.
    """

    def __init__(self, config_data: dict[str, Any], router: Any, small: Any, large: Any):
        from orchestrator.config import SpillwayConfig
        from orchestrator.ledger import Ledger
        from orchestrator.service import QueryService

        config = SpillwayConfig.model_validate(config_data)
        spool = config.ledger.spool_path(config.server.state_dir)  # one per database
        ledger = Ledger(config.ledger.resolved_url(), spool_path=spool)
        ledger.start(require_database=False)  # serve during a ledger outage; rows spool
        service = QueryService(config, handle_backends(router, small, large))
        self._gateway = Gateway(config, service, ledger)
        self._http: ReplicaHTTPServer | None = None
        if config.server.http_server == HTTP_SERVER_INGRESS:  # bind now: a taken port fails here
            server = config.server
            self._http = ReplicaHTTPServer(server.host, server.port, access_log=server.access_log)

    def __serve_build_asgi_app__(self) -> FastAPI:
        """Called by Serve on the replica's event loop, after the constructor."""
        app = create_app(self._gateway)
        if self._http is not None:
            self._http.start(app)
        return app

    async def check_health(self) -> None:
        if self._http is not None:
            self._http.raise_if_stopped()

    async def __del__(self) -> None:
        """Serve awaits this when the replica stops (its ingress wrapper awaits an async
        `__del__` of ours): with our own HTTP server, requests in flight finish and record
        their rows before the ledger closes."""
        http, self._http = getattr(self, "_http", None), None
        try:
            if http is not None:
                await http.stop()
        finally:
            self._close_ledger()

    def _close_ledger(self) -> None:
        gateway = getattr(self, "_gateway", None)
        if gateway is not None:
            gateway.ledger.close()


def handle_backends(router: Any, small: Any, large: Any) -> Backends:
    """Backends over Serve deployment handles."""

    async def route(text: str) -> Any:
        return await router.route.remote(text)

    async def small_generate(request: GenerationRequest) -> GenerationResult:
        return await small.generate.remote(request)

    async def large_generate(request: GenerationRequest) -> GenerationResult:
        return await large.generate.remote(request)

    def small_stream(request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        return small.options(stream=True).stream.remote(request)  # type: ignore[no-any-return]

    def large_stream(request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        return large.options(stream=True).stream.remote(request)  # type: ignore[no-any-return]

    async def ready() -> dict[str, Any]:
        router_info, _, _ = await asyncio.gather(
            router.info.remote(), small.check_health.remote(), large.check_health.remote()
        )
        return {"router_version": router_info["artifact_version"]}

    return Backends(route, small_generate, small_stream, large_generate, large_stream, ready)
