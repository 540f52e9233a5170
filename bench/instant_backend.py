"""An OpenAI-compatible chat server that answers at once: the load test's fast backend.

`bench/load.py --backend instant` points Spillway's small and large models (the remote
backend, `orchestrator/remote.py`) at this server, so that a request's time is Spillway's own
(the HTTP proxy, the ingress, the router, the handle hops, the ledger) and not a model's.
It is a benchmark instrument, not a model: every answer is the same short text. Each sampled
token gets a logprob, because the cascade decides on them:

- the large model's tokens are confident (probability 0.95);
- the small model's and its adapters' confidence comes from a hash of the prompt, so a fixed
  share of prompts (about `--escalate-share`) falls below the cascade's default 0.5 threshold
  and escalates, the same prompts every run.

Serves `GET /v1/models` (the remote backend's health check) and `POST /v1/chat/completions`,
plain or streamed (server-sent events, with a final usage chunk when
`stream_options.include_usage` is set). Answers are in OpenAI's wire format field for field
(`created`, `top_logprobs` and `bytes` on every token), so strict clients such as LiteLLM's
proxy accept them; tests/integration/test_instant_backend.py checks them against the `openai`
package's own response types.

    python bench/instant_backend.py --port 8101
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from aiohttp import web

SMALL_MODELS = ("spillway-small", "legal", "medical", "code")
LARGE_MODEL = "spillway-large"
ANSWER_TOKENS = ("An", " answer", ".", "")


def small_probability(prompt: str, escalate_share: float) -> float:
    """The small model's per-token probability for `prompt`: below 0.5 for about
    `escalate_share` of prompts (by a stable hash), 0.9 for the rest."""
    bucket = zlib.crc32(prompt.encode()) % 1000 / 1000.0
    return 0.3 if bucket < escalate_share else 0.9


def _answer(body: dict[str, Any], escalate_share: float) -> tuple[tuple[str, ...], float, int]:
    """The tokens, their logprob and the prompt's token count for a request body."""
    model = body["model"]
    prompt = " ".join(str(m.get("content", "")) for m in body["messages"])
    probability = 0.95 if model == LARGE_MODEL else small_probability(prompt, escalate_share)
    count = max(1, min(int(body.get("max_tokens") or 16), len(ANSWER_TOKENS)))
    return ANSWER_TOKENS[:count], math.log(probability), max(1, len(prompt) // 4)


def _finish_reason(tokens: tuple[str, ...]) -> str:
    return "length" if len(tokens) < len(ANSWER_TOKENS) else "stop"


def _token_logprob(token: str, logprob: float) -> dict[str, Any]:
    """One entry of `logprobs.content` as OpenAI sends it (no alternatives asked: [])."""
    return {"token": token, "logprob": logprob, "bytes": list(token.encode()), "top_logprobs": []}


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion(body: dict[str, Any], escalate_share: float) -> dict[str, Any]:
    """The chat completion for a request body (already checked by `problem`)."""
    tokens, logprob, prompt_tokens = _answer(body, escalate_share)
    return {
        "id": "chatcmpl-instant",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(tokens)},
                "logprobs": {"content": [_token_logprob(t, logprob) for t in tokens]},
                "finish_reason": _finish_reason(tokens),
            }
        ],
        "usage": _usage(prompt_tokens, len(tokens)),
    }


def chunks(body: dict[str, Any], escalate_share: float) -> list[dict[str, Any]]:
    """The `chat.completion.chunk` objects of a streamed answer: the role, one token each,
    the finish reason, and (with `stream_options.include_usage`) a usage chunk with no
    choices; every chunk but the usage one has `usage: null`, as OpenAI sends them."""
    tokens, logprob, prompt_tokens = _answer(body, escalate_share)
    with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    head = {
        "id": "chatcmpl-instant",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body["model"],
    }

    def chunk(
        delta: dict[str, Any], logprobs: dict[str, Any] | None = None, finish: str | None = None
    ) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return head | {"choices": [choice]} | ({"usage": None} if with_usage else {})

    out = [chunk({"role": "assistant", "content": ""})]
    for token in tokens:
        out.append(chunk({"content": token}, {"content": [_token_logprob(token, logprob)]}))
    out.append(chunk({}, finish=_finish_reason(tokens)))
    if with_usage:
        out.append(head | {"choices": [], "usage": _usage(prompt_tokens, len(tokens))})
    return out


def problem(body: Any) -> str | None:
    """Why this request body cannot be answered, or None."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if body.get("model") not in (*SMALL_MODELS, LARGE_MODEL):
        return f"unknown model {body.get('model')!r}"
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return "messages must be a non-empty list"
    return None


def build_app(escalate_share: float) -> web.Application:
    async def models(_: web.Request) -> web.Response:
        names = (*SMALL_MODELS, LARGE_MODEL)
        data = [
            {"id": n, "object": "model", "created": 0, "owned_by": "spillway-bench"} for n in names
        ]
        return web.json_response({"object": "list", "data": data})

    async def chat(request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        why = problem(body)
        if why is not None:
            error = {"message": why, "type": "invalid_request_error", "param": None, "code": None}
            return web.json_response({"error": error}, status=400)
        if body.get("stream"):
            return await _stream(request, chunks(body, escalate_share))
        return web.json_response(completion(body, escalate_share))

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def _stream(request: web.Request, events: list[dict[str, Any]]) -> web.StreamResponse:
    """Server-sent events, one chunk each, then `data: [DONE]`."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    payload = "".join(f"data: {json.dumps(event)}\n\n" for event in events)
    await response.write((payload + "data: [DONE]\n\n").encode())
    await response.write_eof()
    return response


def remote_configs(base_url: str) -> dict[str, dict[str, Any]]:
    """The remote-backend settings (`small.remote`, `large.remote`) for this server at
    `base_url` (ending in /v1)."""
    return {
        "small": {
            "base_url": base_url,
            "served_name": SMALL_MODELS[0],
            "adapters": [*SMALL_MODELS[1:]],
            "max_model_len": 1024,
        },
        "large": {"base_url": base_url, "served_name": LARGE_MODEL, "max_model_len": 1024},
    }


@contextmanager
def running(port: int, escalate_share: float = 0.25) -> Iterator[str]:
    """This server in a subprocess on 127.0.0.1:`port` until the block ends; yields its
    OpenAI API root (.../v1)."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--port", str(port), "--escalate-share", str(escalate_share)]
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the instant backend did not start") from None
                time.sleep(0.2)
        yield base_url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--escalate-share",
        type=float,
        default=0.25,
        help="about this share of prompts gets a low-confidence small answer (default 0.25)",
    )
    args = parser.parse_args()
    web.run_app(build_app(args.escalate_share), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
