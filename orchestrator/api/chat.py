"""POST /v1/chat/completions: the HTTP end of one query.

Authenticate and admit (query/admission.py), read and validate the body (body.py), hand the
request to the `QueryService` (query/service.py), then write OpenAI's answer, as one JSON body
or as server-sent events, and record the query's ledger row however it ends (query/trace.py,
`QueryRecorder`).
The OpenAI response shapes are built here (`completion_body`, `chunk_body`).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from orchestrator.api.body import parse_chat_request, read_body, requested
from orchestrator.api.errors import ClientClosed, as_spillway_error, error_response
from orchestrator.api.parts import ReplicaParts
from orchestrator.backends.types import StreamDelta
from orchestrator.query.fallback import within
from orchestrator.query.request import ChatCompletionRequest
from orchestrator.query.trace import QueryTrace, SpillwayInfo, new_query_id

__all__ = ["chat_router", "chunk_body", "completion_body"]


def chat_router(parts: ReplicaParts) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        tenant = parts.authenticate(request)
        trace = QueryTrace(new_query_id(), tenant.name, model_requested="", stream=False)
        try:
            # The body first, so even a refused request's row says what was asked; reading
            # it (within the size limit) runs no model.
            raw = await read_body(request, parts.config.limits.max_body_bytes)
            trace.model_requested, trace.stream = requested(raw)
            await parts.admission.admit(tenant)
            parsed = parse_chat_request(raw)
            trace.model_requested, trace.stream = parsed.model, parsed.stream
            timeout = parts.config.server.request_timeout_s
            if parsed.stream:
                return await within(timeout, _open_stream(parts, parsed, trace))
            return await within(timeout, _complete(parts, parsed, trace))
        except Exception as exc:  # every failure becomes a clean error and a ledger row
            error = as_spillway_error(exc)
            await parts.recorder.record_failure(trace, error)
            response = error_response(error)
            response.headers["x-spillway-query-id"] = trace.query_id
            return response

    return router


async def _complete(
    parts: ReplicaParts, parsed: ChatCompletionRequest, trace: QueryTrace
) -> Response:
    result = await parts.service.complete(parsed, trace)
    info = trace.info()
    body = completion_body(
        completion_id=_completion_id(trace),
        model=result.model,
        text=result.text,
        finish_reason=result.finish_reason,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        info=info,
    )
    await parts.recorder.record(trace, status=200)  # durable before the answer leaves
    return JSONResponse(body, headers=info.headers())


async def _open_stream(
    parts: ReplicaParts, parsed: ChatCompletionRequest, trace: QueryTrace
) -> Response:
    """Decide before the first byte (the small answer is held), then stream the accepted one."""
    deltas = await parts.service.open_stream(parsed, trace)
    headers = {k: v for k, v in trace.info().headers().items() if k != "x-spillway-cost-usd"}
    events = _sse_events(parts, trace, deltas)
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


def _completion_id(trace: QueryTrace) -> str:
    return "chatcmpl-" + trace.query_id.removeprefix("q-")


async def _sse_events(
    parts: ReplicaParts, trace: QueryTrace, deltas: AsyncIterator[StreamDelta]
) -> AsyncIterator[str]:
    """OpenAI's chunk stream; the ledger row is written however the stream ends."""
    created = int(time.time())

    def event(delta: dict[str, Any], **kwargs: Any) -> str:
        body = chunk_body(
            completion_id=_completion_id(trace),
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
        finish = last.finish_reason if last and last.finish_reason else "stop"
        final = event({}, finish_reason=finish, extra=_final_extra(trace, last))
        recorded = True
        await parts.recorder.record(trace, status=200)  # durable before the last chunk
        yield final
        yield "data: [DONE]\n\n"
    except Exception as exc:  # headers are gone: report in-band, record, end the stream
        error = as_spillway_error(exc)
        if not recorded:
            recorded = True
            await parts.recorder.record_failure(trace, error)
        yield f"data: {json.dumps(error.body())}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        if not recorded:  # cancelled: the client disconnected mid-stream
            closed = ClientClosed("The client closed the stream.")
            parts.recorder.record_failure_nowait(trace, closed)


def _final_extra(trace: QueryTrace, last: StreamDelta | None) -> dict[str, Any]:
    """The last chunk's `spillway` object and usage (cumulative counts of the last delta)."""
    prompt = last.prompt_tokens if last else 0
    completion = last.completion_tokens if last else 0
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    return {"spillway": trace.info().model_dump(), "usage": usage}


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
