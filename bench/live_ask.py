"""The live benchmark's client side: questions sent through the official `openai` client,
concurrently (the engines batch), each reply reduced to the facts the report needs."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench.live_questions import Question, extract, grade

MAX_TOKENS = 16  # a number, a letter or one line of output; keeps the run inside 30 minutes
SYSTEM = "You answer with the final answer only, no explanation."


@dataclass
class Reply:
    """One answered question through one model choice (`auto`, the large model, ...)."""

    qid: str
    model: str
    text: str
    answer: str
    correct: bool
    route: str | None
    adapter: str | None
    answered_by: str
    escalated: bool
    reason: str
    confidence: float | None
    signals: dict[str, float]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    query_id: str
    seconds: float
    first_token_s: float | None = None

    @property
    def route_key(self) -> str:
        """The cascade policy's key for this query (as `orchestrator.query.service.route_key`)."""
        return self.adapter or self.route or "base"


def make_client(base_url: str, key: str) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=f"{base_url.rstrip('/')}/v1", api_key=key, max_retries=2, timeout=600)


def messages(question: Question) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question.text}]


def ask(client: Any, question: Question, model: str, stream: bool = False) -> Reply:
    """One question, greedy (temperature 0), so the same model gives the same answer twice."""
    started = time.perf_counter()
    if stream:
        return _ask_stream(client, question, model, started)
    completion = client.chat.completions.create(
        model=model, messages=messages(question), max_tokens=MAX_TOKENS, temperature=0
    )
    text = completion.choices[0].message.content or ""
    info = completion.model_extra["spillway"]
    usage = completion.usage
    return _reply(
        question, model, text, info, usage.prompt_tokens, usage.completion_tokens, started
    )


def _ask_stream(client: Any, question: Question, model: str, started: float) -> Reply:
    first: float | None = None
    parts: list[str] = []
    info: dict[str, Any] = {}
    usage = (0, 0)
    stream = client.chat.completions.create(
        model=model,
        messages=messages(question),
        max_tokens=MAX_TOKENS,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            first = first if first is not None else time.perf_counter() - started
            parts.append(chunk.choices[0].delta.content)
        extra = chunk.model_extra or {}
        if "spillway" in extra:
            info = extra["spillway"]
        if chunk.usage is not None:
            usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
    reply = _reply(question, model, "".join(parts), info, usage[0], usage[1], started)
    reply.first_token_s = first
    return reply


def _reply(
    question: Question,
    model: str,
    text: str,
    info: dict[str, Any],
    prompt_tokens: int,
    completion_tokens: int,
    started: float,
) -> Reply:
    return Reply(
        qid=question.qid,
        model=model,
        text=text,
        answer=extract(question.kind, text),
        correct=grade(question, text),
        route=info.get("route"),
        adapter=info.get("adapter"),
        answered_by=info.get("answered_by", ""),
        escalated=bool(info.get("escalated")),
        reason=info.get("reason", ""),
        confidence=info.get("confidence"),
        signals=dict(info.get("signals") or {}),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=float(info.get("cost_usd", "0")),
        query_id=info.get("query_id", ""),
        seconds=time.perf_counter() - started,
    )


def ask_all(
    client: Any,
    questions: Sequence[Question],
    model: str,
    *,
    concurrency: int = 8,
    stream: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Reply]:
    """Every question through `model`, `concurrency` at a time; replies keyed by question id."""
    done: dict[str, Reply] = {}
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(ask, client, q, model, stream) for q in questions]
        for i, future in enumerate(futures, 1):
            reply = future.result()
            done[reply.qid] = reply
            if progress and (i % 25 == 0 or i == len(futures)):
                rate = i / (time.perf_counter() - started)
                progress(
                    f"  {model}{' (stream)' if stream else ''}: {i}/{len(futures)} ({rate:.1f} q/s)"
                )
    return done


def cpu_seconds_per_token(client: Any, model: str, concurrency: int = 8) -> dict[str, float]:
    """This engine's CPU-seconds per prompt token and per completion token, measured here.

    Each local engine computes on one core (`cpu_threads_bind`), so wall seconds of a batch are
    that core's CPU-seconds. Prefill: `concurrency` long prompts, one token out. Decode: short
    prompts, 48 tokens out each, minus the prefill part."""
    long_prompt = "Repeat the word 'river' and nothing else. " + " ".join(["river"] * 300)
    prefill = _timed_batch(client, model, long_prompt, 1, concurrency)
    decode = _timed_batch(
        client, model, "Count from 1 to 100, separated by spaces.", 48, concurrency
    )
    per_prompt = prefill["seconds"] / max(prefill["prompt_tokens"], 1)
    decode_s = max(decode["seconds"] - per_prompt * decode["prompt_tokens"], 0.0)
    return {
        "prompt": per_prompt,
        "completion": decode_s / max(decode["completion_tokens"], 1),
    }


def _timed_batch(client: Any, model: str, prompt: str, max_tokens: int, n: int) -> dict[str, float]:
    def one(i: int) -> tuple[int, int]:
        completion = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": f"({i}) {prompt}"}],
            max_tokens=max_tokens,
            temperature=0,
        )
        return completion.usage.prompt_tokens, completion.usage.completion_tokens

    one(0)  # warm
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n) as pool:
        usages = list(pool.map(one, range(n)))
    return {
        "seconds": time.perf_counter() - started,
        "prompt_tokens": float(sum(u[0] for u in usages)),
        "completion_tokens": float(sum(u[1] for u in usages)),
    }
