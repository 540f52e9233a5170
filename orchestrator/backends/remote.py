"""The remote LLM backend: ``LLMDeployment``'s surface over an OpenAI-compatible server.

For teams that already run their models (an existing vLLM server, or any server speaking
OpenAI's ``/v1/chat/completions`` with ``logprobs``): Spillway routes, cascades and meters;
the server generates. The adapter name is the remote model name, as with vLLM's
``--lora-modules name=path``. The cascade needs each sampled token's logprob, so requests ask
for ``logprobs: true, top_logprobs: 0``; a server that returns none is an error.

Errors: the server's 4xx answers about the request become ``LLMRequestError`` subclasses
(clients get a 400/404); everything else (unreachable, 5xx, bad key, malformed answers) is a
``RemoteLLMError`` and a read timeout is a ``RemoteTimeoutError`` (also a ``TimeoutError``).
Connect errors, 429 and 5xx are retried with exponential backoff, for streams only before the
first byte arrives: nothing has reached the caller then.

The wire format (answers, SSE streams, error bodies) is parsed in
``orchestrator.backends.remote_wire``.

Unlike ``LLMDeployment`` this backend does not count prompt tokens (it has no tokenizer);
a prompt alone longer than the server's context is the server's 400, which becomes
``PromptTooLongError``. vLLM shortens ``max_tokens`` to the context left after the prompt.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx

from orchestrator.backends.remote_post import JsonPoster
from orchestrator.backends.remote_wire import (
    RemoteLLMError,
    RemoteTimeoutError,
    chat_message,
    error_for,
    json_object,
    parse_result,
    parse_stream,
)
from orchestrator.backends.types import (
    GenerationRequest,
    GenerationResult,
    PromptTooLongError,
    StreamDelta,
    UnknownAdapterError,
)
from orchestrator.config.remote import RemoteLLMConfig

__all__ = ["RemoteLLMConfig", "RemoteLLMDeployment", "RemoteLLMError", "RemoteTimeoutError"]

logger = logging.getLogger(__name__)

_RETRY_TRANSPORT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


class RemoteLLMDeployment:
    """``generate``/``stream``/``describe``/``check_health``/``shutdown`` over HTTP.

    ``client`` is the I/O seam (tests pass one over ``httpx.MockTransport``); it is used with
    absolute URLs, so it needs no ``base_url``. A passed client is the caller's to close.
    """

    def __init__(
        self, config: RemoteLLMConfig | dict[str, Any], client: httpx.AsyncClient | None = None
    ) -> None:
        self.config = RemoteLLMConfig.model_validate(config)
        self._headers = _auth_headers(self.config.api_key_env)
        self._timeout = httpx.Timeout(self.config.timeout_s, connect=self.config.connect_timeout_s)
        self._owns_client = client is None
        limits = httpx.Limits(max_connections=self.config.max_connections)
        self._client: httpx.AsyncClient | None = client or httpx.AsyncClient(limits=limits)
        # Non-streaming answers go over aiohttp (remote_post.py: a third of httpx's time per
        # POST) unless the caller passed the client to use for everything.
        self._poster: JsonPoster | None = None
        if client is None:
            self._poster = JsonPoster(
                max_connections=self.config.max_connections,
                connect_timeout_s=self.config.connect_timeout_s,
                timeout_s=self.config.timeout_s,
            )
        self._closing: asyncio.Task[None] | None = None
        self._closing_post: asyncio.Task[None] | None = None

    # -- requests ---------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        body = self._body(request, stream=False)
        if self._poster is not None:
            response = await self._posted(self._poster, body, request)
        else:
            async with self._response(body, request) as response:
                with self._translated():
                    await response.aread()
        try:
            data = response.json()
        except ValueError as exc:
            raise RemoteLLMError(f"{self._where()}: the answer is not JSON") from exc
        return parse_result(data, self._model_name(request))

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        body = self._body(request, stream=True)
        async with self._response(body, request) as response:
            with self._translated():
                async for delta in parse_stream(response.aiter_lines(), self._model_name(request)):
                    yield delta

    def _model_name(self, request: GenerationRequest) -> str:
        return request.adapter or self.config.served_name

    def _body(self, request: GenerationRequest, *, stream: bool) -> dict[str, Any]:
        """The chat-completion body; raises UnknownAdapterError before any I/O."""
        name = self._model_name(request)
        if name != self.config.served_name and name not in self.config.adapters:
            known = [self.config.served_name, *self.config.adapters]
            raise UnknownAdapterError(f"unknown model {name!r}; known: {known}")
        limit = self.config.max_model_len
        if limit is not None and request.max_tokens >= limit:
            raise PromptTooLongError(
                f"max_tokens={request.max_tokens} leaves no room for a prompt in the model's "
                f"{limit} tokens: lower max_tokens"
            )
        body: dict[str, Any] = {
            "model": name,
            "messages": [chat_message(m) for m in request.messages],
            "max_tokens": request.max_tokens,
            "logprobs": True,
            "top_logprobs": 0,
        }
        # None: the client sent none, so the remote server's own default applies.
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop"] = request.stop
        if request.seed is not None:
            body["seed"] = request.seed
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return body

    def _request_headers(self, request: GenerationRequest) -> dict[str, str]:
        headers = dict(self._headers)
        if request.request_id:
            headers["X-Request-Id"] = request.request_id  # vLLM logs it: one id end to end
        return headers

    def _request(self, body: dict[str, Any], request: GenerationRequest) -> httpx.Request:
        url = f"{self.config.base_url}/chat/completions"
        return self._live().build_request(
            "POST", url, json=body, headers=self._request_headers(request), timeout=self._timeout
        )

    @asynccontextmanager
    async def _response(
        self, body: dict[str, Any], request: GenerationRequest
    ) -> AsyncIterator[httpx.Response]:
        """A 200 response with its body unread; retries while nothing has been received."""

        async def send() -> httpx.Response:
            return await self._live().send(self._request(body, request), stream=True)

        response = await self._retried(send, body["model"])
        try:
            yield response
        finally:
            await response.aclose()

    async def _posted(
        self, poster: JsonPoster, body: dict[str, Any], request: GenerationRequest
    ) -> httpx.Response:
        """A 200 answer, read whole, over aiohttp; retried as `_response`."""
        self._live()  # raises once shut down, as the httpx path does
        url = f"{self.config.base_url}/chat/completions"
        headers = self._request_headers(request)
        return await self._retried(lambda: poster.post(url, body, headers), body["model"])

    async def _retried(
        self, send: Callable[[], Awaitable[httpx.Response]], model: str
    ) -> httpx.Response:
        """`send()`'s 200 response; connect errors, 429 and 5xx are retried with backoff while
        attempts remain, anything else is raised as this module's errors."""
        for attempt in range(self.config.max_retries + 1):
            retry = attempt < self.config.max_retries
            try:
                response = await send()
            except httpx.HTTPError as exc:  # read/write/pool timeouts: the time is spent
                if not (retry and isinstance(exc, _RETRY_TRANSPORT)):
                    raise self._translate(exc) from exc
                await self._backoff(attempt, repr(exc))
                continue
            if response.status_code == 200:
                return response
            await response.aread()
            await response.aclose()
            if not (retry and _retryable(response.status_code)):
                raise self._error_for(response, model)
            await self._backoff(attempt, f"status {response.status_code}")
        raise AssertionError("unreachable: the last attempt returns or raises")

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """httpx errors while reading an answer, as this module's errors."""
        try:
            yield
        except httpx.HTTPError as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: httpx.HTTPError) -> RemoteLLMError:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return RemoteLLMError(f"{self._where()} is unreachable: {exc!r}")
        if isinstance(exc, httpx.TimeoutException):
            return RemoteTimeoutError(f"{self._where()} sent nothing for {self.config.timeout_s} s")
        return RemoteLLMError(f"{self._where()}: the connection broke: {exc!r}")

    async def _backoff(self, attempt: int, why: str) -> None:
        delay = self.config.retry_backoff_s * (2**attempt) * random.uniform(0.5, 1.0)
        logger.warning("%s: %s; retry %d in %.2f s", self._where(), why, attempt + 1, delay)
        await asyncio.sleep(delay)

    def _error_for(self, response: httpx.Response, model: str) -> Exception:
        config = self.config
        return error_for(
            response,
            model,
            served_name=config.served_name,
            api_key_env=config.api_key_env,
            where=self._where(),
        )

    def _where(self) -> str:
        return f"remote model server {_redacted(self.config.base_url)}"

    # -- lifecycle --------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            "served_name": self.config.served_name,
            "adapters": list(self.config.adapters),
            "max_model_len": self.config.max_model_len,
            "backend": "remote",
            "base_url": _redacted(self.config.base_url),
        }

    async def check_health(self) -> None:
        """Raises unless the server answers ``GET /models`` listing ``served_name``.

        Missing adapters are only logged: a vLLM server may load adapters on first use."""
        url = f"{self.config.base_url}/models"
        # A listing is instant: answer well within Serve's health_check_timeout_s.
        timeout = httpx.Timeout(2 * self.config.connect_timeout_s)
        with self._translated():
            response = await self._live().get(url, headers=self._headers, timeout=timeout)
        if response.status_code != 200:
            raise self._error_for(response, self.config.served_name)
        served = {
            m.get("id") for m in json_object(response).get("data") or [] if isinstance(m, dict)
        }
        if self.config.served_name not in served:
            raise RemoteLLMError(f"{self._where()} does not serve {self.config.served_name!r}")
        missing = sorted(set(self.config.adapters) - served)
        if missing:
            logger.warning("%s does not list adapters %s (yet)", self._where(), missing)

    def _live(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("this remote LLM deployment has been shut down")
        return self._client

    async def aclose(self) -> None:
        """Close the clients (if this deployment created them)."""
        client, self._client = self._client, None
        poster, self._poster = getattr(self, "_poster", None), None
        if poster is not None:
            await poster.aclose()
        if client is not None and self._owns_client:
            await client.aclose()

    def shutdown(self) -> None:
        """Stop using the server and close the client's connections. Safe to call twice."""
        client, self._client = getattr(self, "_client", None), None
        poster, self._poster = getattr(self, "_poster", None), None
        if poster is not None:
            self._closing_post = poster.close()
        if client is None or not getattr(self, "_owns_client", False):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:  # inside the replica's loop: close in the background
            self._closing = loop.create_task(client.aclose())
            return
        try:
            asyncio.run(client.aclose())
        except Exception as exc:  # connections of a loop that is gone: nothing left to free
            logger.debug("closing the HTTP client: %r", exc)

    def __del__(self) -> None:
        self.shutdown()


def _auth_headers(api_key_env: str | None) -> dict[str, str]:
    if api_key_env is None:
        return {}
    key = os.environ.get(api_key_env)
    if not key:
        raise ValueError(
            f"api_key_env is {api_key_env!r} but that environment variable is empty or unset: "
            "set it in the replica's environment (runtime_env or the pod's env)"
        )
    return {"Authorization": f"Bearer {key}"}


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _redacted(url: str) -> str:
    """The URL without user:password@, if any."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(username=None, password=None)) if parsed.userinfo else url
