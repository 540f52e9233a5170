"""The live benchmark's streaming and reload steps, their pure parts: answers after a reason
graded exactly, thresholds at an equal escalation share, the policies compared, pids compared."""

from __future__ import annotations

from bench.live_questions import NUMBER_HINT, Question
from bench.live_reload import processes_unchanged
from bench.live_stream import (
    StreamReply,
    equal_share_threshold,
    grade_reasoned,
    reasoned_text,
    stream_policies,
)
from cascade.policy import Signal

Q = Question(
    "general-g001", "general", "number", f"What is 6 * 7? {NUMBER_HINT}", "42", "generated"
)


def test_the_answer_is_read_after_the_last_answer_marker() -> None:
    assert reasoned_text(Q) == "What is 6 * 7?"
    assert grade_reasoned(Q, "Six sevens are 42.\nAnswer: 42")
    assert grade_reasoned(Q, "6 times 7 is 40 plus 2. answer:42.")
    assert not grade_reasoned(Q, "Answer: 41. Let me check. Answer: 43")
    assert not grade_reasoned(Q, "It is 42.")  # no marker: the format was not followed


def test_equal_share_threshold_escalates_that_share() -> None:
    values = [0.9, 0.1, 0.5, 0.7, 0.3]
    assert equal_share_threshold(values, 0.4) == 0.5  # 0.1 and 0.3 fall below it
    assert equal_share_threshold(values, 0.0) == 0.1  # nothing below
    assert equal_share_threshold(values, 1.0) == 1.0  # everything below


def _reply(qid: str, mean: float, head: float) -> StreamReply:
    signals = {"mean_prob": mean, "first_k": head}
    return StreamReply(qid, True, False, signals, 30, None, 1.0)


def test_stream_policies_share_the_escalation_rate() -> None:
    small = {
        r.qid: r for r in (_reply("a", 0.9, 0.2), _reply("b", 0.6, 0.8), _reply("c", 0.3, 0.5))
    }
    whole, early = stream_policies(small, k=4, share=1 / 3).values()
    assert (whole.default.signal, whole.default.threshold) == (Signal.mean_prob, 0.6)
    assert whole.default.stream_decide_after_tokens is None
    assert (early.default.signal, early.default.threshold) == (Signal.first_k, 0.5)
    assert (early.default.first_k, early.default.stream_decide_after_tokens) == (4, 4)


def test_processes_unchanged_needs_the_same_pids() -> None:
    before = {"SmallLLM.engine": 10, "LargeLLM.engine": 11}
    assert processes_unchanged(before, dict(before))
    assert not processes_unchanged(before, before | {"LargeLLM.engine": 12})
    assert not processes_unchanged({}, {})
