"""Outcome records from the MMLU-Pro per-model results in ``../shared/data/mmlu_pro``.

Pure: the caller reads ``questions.jsonl`` and the two CSV matrices and passes the rows.
Per question with a result for both models: each model's correctness, and a cost estimate
from token counts at the given prices. Token counts are estimates at ``CHARS_PER_TOKEN``
characters a token: the prompt is the question and its options (the 5-shot exemplars of the
benchmark harness are left out: a service user sends only the question), the completion is
the model's recorded output length.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cascade.pricing import Price, Usage, attempt_cost

__all__ = ["CHARS_PER_TOKEN", "BuildReport", "build_outcomes", "model_names"]

CHARS_PER_TOKEN = 4
"""Characters per token for English text with Llama-3 tokenizers (the data README's proxy)."""

_KEY_COLUMNS = ("question_id", "category", "src")


@dataclass(frozen=True)
class BuildReport:
    """What ``build_outcomes`` produced, and what it skipped and why."""

    records: list[dict[str, Any]]
    skipped_no_result: int
    skipped_no_question: int


def model_names(header: Iterable[str]) -> list[str]:
    """Model columns of a matrix header."""
    return [name for name in header if name not in _KEY_COLUMNS]


def _tokens(chars: int) -> int:
    return max(1, round(chars / CHARS_PER_TOKEN))


def _prompt_chars(question: Mapping[str, Any]) -> int:
    options = question.get("options") or []
    return len(str(question["text"])) + sum(len(str(o)) + 4 for o in options)


def _check_models(header: list[str], models: Iterable[str]) -> None:
    known = model_names(header)
    missing = [m for m in models if m not in known]
    if missing:
        raise ValueError(f"unknown model(s) {missing}; the matrix has: {', '.join(known)}")


def build_outcomes(
    questions: Iterable[Mapping[str, Any]],
    correct_rows: Iterable[Mapping[str, str]],
    chars_rows: Iterable[Mapping[str, str]],
    *,
    small: str,
    large: str,
    small_price: Price,
    large_price: Price,
) -> BuildReport:
    """One outcome record per question both models answered (``route`` = the data's label)."""
    by_id = {str(q["question_id"]): q for q in questions}
    chars = {row["question_id"]: row for row in chars_rows}
    records: list[dict[str, Any]] = []
    no_result = no_question = 0
    checked = False
    for row in correct_rows:
        if not checked:
            _check_models(list(row), (small, large))
            checked = True
        qid = row["question_id"]
        if not row[small] or not row[large]:
            no_result += 1
            continue
        question = by_id.get(qid)
        if question is None:
            no_question += 1
            continue
        records.append(
            _record(question, row, chars.get(qid, {}), small, large, (small_price, large_price))
        )
    return BuildReport(records, no_result, no_question)


def _record(
    question: Mapping[str, Any],
    correct: Mapping[str, str],
    chars: Mapping[str, str],
    small: str,
    large: str,
    prices: tuple[Price, Price],
) -> dict[str, Any]:
    prompt = _tokens(_prompt_chars(question))
    small_tokens = _tokens(int(chars.get(small) or 0))
    large_tokens = _tokens(int(chars.get(large) or 0))
    return {
        "question_id": question["question_id"],
        "text": question["text"],
        "route": question.get("label"),
        "category": question.get("category"),
        "small_correct": correct[small] == "1",
        "large_correct": correct[large] == "1",
        "prompt_tokens": prompt,
        "small_completion_tokens": small_tokens,
        "large_completion_tokens": large_tokens,
        "small_cost": float(attempt_cost(Usage(prompt, small_tokens), prices[0])),
        "large_cost": float(attempt_cost(Usage(prompt, large_tokens), prices[1])),
    }
