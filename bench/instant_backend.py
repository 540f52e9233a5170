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

Serves `GET /v1/models` (the remote backend's health check) and non-streaming
`POST /v1/chat/completions`; streams are refused with a 400 in OpenAI's error shape.

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


def completion(body: dict[str, Any], escalate_share: float) -> dict[str, Any]:
    """The chat completion for a request body (already checked by `problem`)."""
    model = body["model"]
    prompt = " ".join(str(m.get("content", "")) for m in body["messages"])
    probability = 0.95 if model == LARGE_MODEL else small_probability(prompt, escalate_share)
    count = max(1, min(int(body.get("max_tokens") or 16), len(ANSWER_TOKENS)))
    tokens = ANSWER_TOKENS[:count]
    logprob = math.log(probability)
    return {
        "id": "chatcmpl-instant",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(tokens)},
                "logprobs": {"content": [{"token": t, "logprob": logprob} for t in tokens]},
                "finish_reason": "length" if count < len(ANSWER_TOKENS) else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": max(1, len(prompt) // 4),
            "completion_tokens": count,
            "total_tokens": max(1, len(prompt) // 4) + count,
        },
    }


def problem(body: Any) -> str | None:
    """Why this request body cannot be answered, or None."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if body.get("model") not in (*SMALL_MODELS, LARGE_MODEL):
        return f"unknown model {body.get('model')!r}"
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return "messages must be a non-empty list"
    if body.get("stream"):
        return "this benchmark backend does not stream"
    return None


def build_app(escalate_share: float) -> web.Application:
    async def models(_: web.Request) -> web.Response:
        names = (*SMALL_MODELS, LARGE_MODEL)
        return web.json_response({"object": "list", "data": [{"id": n} for n in names]})

    async def chat(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        why = problem(body)
        if why is not None:
            error = {"message": why, "type": "invalid_request_error", "code": None}
            return web.json_response({"error": error}, status=400)
        return web.json_response(completion(body, escalate_share))

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app


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
