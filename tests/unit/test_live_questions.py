"""The live benchmark's question set: fixed, balanced, split without overlap, graded exactly."""

from __future__ import annotations

from collections import Counter

from bench.live_questions import Question, build_questions, extract, grade, split


def test_build_is_repeatable_and_balanced() -> None:
    questions = build_questions(120)
    assert questions == build_questions(120)
    assert Counter(q.domain for q in questions) == dict.fromkeys(
        ("legal", "medical", "code", "general"), 120
    )
    assert len({q.text for q in questions}) == len(questions)
    assert {q.source for q in questions} == {"shipped", "facts", "generated"}


def test_split_is_stratified_disjoint_and_interleaved() -> None:
    calibration, test = split(build_questions(120))
    assert (len(calibration), len(test)) == (192, 288)
    assert not {q.qid for q in calibration} & {q.qid for q in test}
    assert Counter(q.domain for q in test[:8]) == dict.fromkeys(
        ("legal", "medical", "code", "general"), 2
    )


def test_generated_code_answers_are_the_printed_output() -> None:
    code = [q for q in build_questions(120) if q.domain == "code" and q.source == "generated"]
    assert code and all(q.kind == "output" and q.answer for q in code)


def test_extract_and_grade() -> None:
    assert extract("number", "The answer is 1,234.") == "1234"
    assert extract("number", "42.0") == "42"
    assert extract("number", "none") == ""
    assert extract("letter", "B) Offer and acceptance") == "B"
    assert extract("letter", "I think it's D.") == "D"
    assert extract("output", "```\n[3, 2, 1]\n```") == "[3, 2, 1]"
    question = Question("q", "general", "number", "What is 6 × 7?", "42", "generated")
    assert grade(question, "42") and not grade(question, "24")
