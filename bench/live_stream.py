"""The live benchmark's streaming step: a stream decided after its first k tokens
(`signal: first_k`, `stream_decide_after_tokens: k`) against one decided on the whole answer
(`mean_prob`, the stream held until the small model finishes), on the running service.

The live set's own answers are 2-6 tokens (a number, a letter, one line), so deciding after k
tokens would be deciding on the whole answer. Here a subset of the test questions is asked for
a one-sentence reason first and the answer on a last line (`Answer: ...`), so answers run well
past k. Steps, on one service (no restart; policies replaced through `PUT /v1/admin/cascade`):

1. the cascade off, not streamed: each question with `model: auto` (the small answer, its
   correctness and every signal: `first_k` over its first k tokens, `mean_prob` over all) and
   with the large model named;
2. each signal's threshold set so that the same share of these answers escalates (the trade-off
   is then the signal's ranking alone), and each signal's AUROC for "the small answer is right";
3. each policy in force in turn, every question streamed through the official client
   (`stream=True`, `model: auto`): time to first content token (client side), accuracy, share
   escalated. Greedy decoding: the streamed answers are the same as in step 1.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from statistics import median
from typing import Any

from bench.live_questions import LETTER_HINT, NUMBER_HINT, Question, extract
from bench.live_reload import policy_in_force, policy_summary, put_policy
from cascade.live import auroc
from cascade.policy import CascadePolicy, RoutePolicy, Signal

SYSTEM = (
    "Give one short sentence of reasoning, then the final answer alone on a last line that "
    "starts with 'Answer:'."
)
MAX_TOKENS = 64
_ANSWER = re.compile(r"answer\s*:", re.IGNORECASE)


@dataclass
class StreamReply:
    qid: str
    correct: bool
    escalated: bool
    signals: dict[str, float]
    completion_tokens: int
    first_token_s: float | None
    seconds: float


def reasoned_text(question: Question) -> str:
    """The question without its 'answer only' hint (the system prompt asks for a reason)."""
    return question.text.replace(NUMBER_HINT, "").replace(LETTER_HINT, "").strip()


def grade_reasoned(question: Question, text: str) -> bool:
    """Right when the text after the last `Answer:` is the question's answer."""
    parts = _ANSWER.split(text)
    if len(parts) < 2:
        return False
    return extract(question.kind, parts[-1]) == question.answer.strip()


def ask_reasoned(client: Any, question: Question, model: str, stream: bool) -> StreamReply:
    started = time.perf_counter()
    request = {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": reasoned_text(question)},
        ],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
    }
    first: float | None = None
    if stream:
        parts, info, tokens = [], {}, 0
        chunks = client.chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        )
        for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                first = first if first is not None else time.perf_counter() - started
                parts.append(chunk.choices[0].delta.content)
            info = (chunk.model_extra or {}).get("spillway", info)
            tokens = chunk.usage.completion_tokens if chunk.usage is not None else tokens
        text = "".join(parts)
    else:
        completion = client.chat.completions.create(**request)
        text = completion.choices[0].message.content or ""
        info, tokens = completion.model_extra["spillway"], completion.usage.completion_tokens
    return StreamReply(
        qid=question.qid,
        correct=grade_reasoned(question, text),
        escalated=bool(info.get("escalated")),
        signals=dict(info.get("signals") or {}),
        completion_tokens=tokens,
        first_token_s=first,
        seconds=time.perf_counter() - started,
    )


def ask_all_reasoned(
    client: Any, questions: Sequence[Question], model: str, stream: bool, concurrency: int
) -> dict[str, StreamReply]:
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        replies = pool.map(lambda q: ask_reasoned(client, q, model, stream), questions)
        return {r.qid: r for r in replies}


def equal_share_threshold(values: Sequence[float], share: float) -> float:
    """A threshold under which `share` of the values fall (escalated: confidence < threshold):
    the value at rank round(share * n) of the sorted values (ties may escalate fewer)."""
    ordered = sorted(values)
    rank = round(share * len(ordered))
    return 1.0 if rank >= len(ordered) else ordered[rank]


def stream_policies(
    small: dict[str, StreamReply], k: int, share: float
) -> dict[str, CascadePolicy]:
    """The whole-answer policy (mean_prob, stream held) and the first-k one (decided after k
    tokens), each threshold escalating `share` of the recorded answers."""
    whole = [r.signals.get("mean_prob", 0.0) for r in small.values()]
    head = [r.signals.get("first_k", 0.0) for r in small.values()]
    return {
        "whole answer (mean_prob, held)": CascadePolicy(
            default=RoutePolicy(
                signal=Signal.mean_prob, threshold=equal_share_threshold(whole, share)
            )
        ),
        f"first {k} tokens (first_k, decided after {k})": CascadePolicy(
            default=RoutePolicy(
                signal=Signal.first_k,
                first_k=k,
                threshold=equal_share_threshold(head, share),
                stream_decide_after_tokens=k,
            )
        ),
    }


def _summary(replies: Sequence[StreamReply]) -> dict[str, Any]:
    def med(values: list[float]) -> float | None:
        return median(values) if values else None

    firsts = [r.first_token_s for r in replies if r.first_token_s is not None]
    return {
        "accuracy": sum(r.correct for r in replies) / len(replies),
        "share_escalated": sum(r.escalated for r in replies) / len(replies),
        "ttft_median_s": med(firsts),
        "ttft_median_accepted_s": med(
            [r.first_token_s for r in replies if r.first_token_s is not None and not r.escalated]
        ),
        "ttft_median_escalated_s": med(
            [r.first_token_s for r in replies if r.first_token_s is not None and r.escalated]
        ),
        "total_median_s": med([r.seconds for r in replies]),
    }


def stream_tradeoff(
    make_client: Callable[[], Any],
    base_url: str,
    key: str,
    questions: Sequence[Question],
    *,
    k: int = 8,
    share: float = 0.5,
    concurrency: int = 4,
    cascade_off: CascadePolicy,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Steps 1-3 (module docstring); leaves the cascade off again at the end."""
    client = make_client()
    # `first_k` in the responses' signals is over the route's first_k tokens: set it to k.
    put_policy(
        base_url,
        key,
        CascadePolicy(default=RoutePolicy(signal=Signal.mean_prob, threshold=0.0, first_k=k)),
    )
    small = ask_all_reasoned(client, questions, "auto", False, concurrency)
    large = ask_all_reasoned(client, questions, "spillway-large", False, concurrency)
    right = [small[q.qid].correct for q in questions]
    tokens = sorted(r.completion_tokens for r in small.values())
    result: dict[str, Any] = {
        "questions": len(questions),
        "k": k,
        "escalated_share_target": share,
        "small_accuracy": sum(right) / len(right),
        "large_accuracy": sum(large[q.qid].correct for q in questions) / len(questions),
        "small_answer_tokens": {"min": tokens[0], "median": median(tokens), "max": tokens[-1]},
        "auroc": {
            name: auroc([small[q.qid].signals.get(name, 0.0) for q in questions], right)
            for name in ("mean_prob", "first_k")
        },
        "policies": {},
    }
    log(f"streaming subset: {result['small_answer_tokens']} small answer tokens")
    for name, policy in stream_policies(small, k, share).items():
        put_policy(base_url, key, policy)
        state = policy_summary(policy_in_force(base_url, key))
        streamed = ask_all_reasoned(client, questions, "auto", True, concurrency)
        entry = _summary([streamed[q.qid] for q in questions])
        # An escalated answer is the large model's (greedy: the same as its recorded one).
        entry["policy"] = state
        result["policies"][name] = entry
        log(f"  {name}: {entry}")
    put_policy(base_url, key, cascade_off)
    return result
