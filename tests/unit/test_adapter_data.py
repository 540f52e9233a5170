"""adapter_training's data: loader errors name file and line, answer-only labels, the split.

Pure and fast: no model, no tokenizer, no torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapter_training.data import (
    DataError,
    Example,
    Message,
    Task,
    load_examples,
    load_tasks,
    split_examples,
)
from adapter_training.encoding import IGNORE_INDEX, batch_order, mask_prompt
from adapter_training.evaluate import MC_INSTRUCTION, extract_answer, is_correct, task_prompt

END = 99


def _chat(question: str, answer: str) -> dict:
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_loads_chat_and_prompt_completion(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            json.dumps(_chat("What is a tort?", "A civil wrong.")),
            "",
            json.dumps({"prompt": "2+2?", "completion": "4"}),
        ],
    )
    examples = load_examples(path)
    assert [e.answer for e in examples] == ["A civil wrong.", "4"]
    assert examples[1].prompt == [{"role": "user", "content": "2+2?"}]


@pytest.mark.parametrize(
    ("bad_line", "hint"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"text": "hi"}), "missing 'messages'"),
        (json.dumps({"messages": []}), "non-empty list"),
        (json.dumps({"messages": [{"role": "user", "content": "q"}]}), "last message"),
        (json.dumps(_chat("q", "   ")), "empty"),
        (
            json.dumps({"messages": [{"role": "bot", "content": "q"}]}),
            "unknown role 'bot'",
        ),
        (
            json.dumps({"messages": [{"role": "assistant", "content": "a"}]}),
            "no user message",
        ),
        (json.dumps({"prompt": "q", "completion": ""}), "'completion' is empty"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, bad_line: str, hint: str) -> None:
    path = _write(tmp_path, [json.dumps(_chat("q", "a")), bad_line])
    with pytest.raises(DataError) as raised:
        load_examples(path)
    message = str(raised.value)
    assert f"{path}, line 2" in message
    assert hint in message


def test_missing_and_empty_files_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_examples(tmp_path / "absent.jsonl")
    with pytest.raises(DataError, match="empty"):
        load_examples(_write(tmp_path, [""]))


def test_task_errors_name_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, [json.dumps({"question": "q?", "answer": "B"}), '{"question": "q"}'])
    with pytest.raises(DataError, match=r"line 2: 'answer'"):
        load_tasks(path)


def test_mask_prompt_labels_only_the_answer_and_end_of_turn() -> None:
    encoded = mask_prompt([1, 2, 3], [7, 8, END, 10], end_id=END, max_length=64)
    assert encoded.input_ids == [1, 2, 3, 7, 8, END]  # the newline after <|im_end|> is dropped
    assert encoded.labels == [IGNORE_INDEX] * 3 + [7, 8, END]
    assert encoded.answer_tokens == 3


def test_mask_prompt_truncates_from_the_right() -> None:
    encoded = mask_prompt([1, 2, 3], [7, 8, END], end_id=END, max_length=4)
    assert encoded.input_ids == [1, 2, 3, 7]
    assert encoded.labels == [IGNORE_INDEX] * 3 + [7]
    assert mask_prompt([1, 2, 3], [7], end_id=END, max_length=3).answer_tokens == 0


def _examples(n: int) -> list[Example]:
    return [
        Example((Message("user", f"question {i}"), Message("assistant", f"answer {i}")))
        for i in range(n)
    ]


def test_split_is_deterministic_disjoint_and_order_free() -> None:
    examples = _examples(600)
    kept, held = split_examples(examples, heldout_fraction=1 / 6)
    assert split_examples(list(reversed(examples)))[1] == list(reversed(held))
    assert not set(kept) & set(held)
    assert len(kept) + len(held) == 600
    assert len(held) == 100


def test_split_salt_gives_an_independent_split() -> None:
    examples = _examples(300)
    assert split_examples(examples, salt="a")[1] != split_examples(examples, salt="b")[1]
    with pytest.raises(ValueError, match="heldout_fraction"):
        split_examples(examples, heldout_fraction=1.0)


def test_batch_order_is_deterministic_and_covers_every_index() -> None:
    lengths = [(i * 37) % 50 + 1 for i in range(23)]
    first = batch_order(lengths, batch_size=4, seed=3)
    assert first == batch_order(lengths, batch_size=4, seed=3)
    assert first != batch_order(lengths, batch_size=4, seed=4)
    assert sorted(i for batch in first for i in batch) == list(range(23))


@pytest.mark.parametrize(
    ("output", "expected", "correct"),
    [
        ("B", "B", True),
        ("The answer is (C).", "C", True),
        ("Answer: D. Because...", "D", True),
        ("Bob thinks A", "A", True),
        ("A patient with B", "B", False),  # the first standalone letter is the article "A"
        ("42\nmore text", "42", True),
        ("```\n42\n```", "42", True),
        ("The code prints `42`.", "42", True),
        ("The code prints 42.", "42", False),
        ("[1, 2]\n[3]", "[1, 2]\n[3]", True),
    ],
)
def test_answer_extraction_rule(output: str, expected: str, correct: bool) -> None:
    assert is_correct(output, expected) is correct


def test_extract_answer_multiple_choice_without_letter() -> None:
    assert extract_answer("none of these", "A") == ""


def test_multiple_choice_questions_ask_for_the_letter() -> None:
    mc = Task(question="Which?\nA) x\nB) y\nC) z\nD) w", answer="B")
    assert task_prompt(mc).endswith(MC_INSTRUCTION)
    already = Task(question="Which? Reply with the letter.\nA) x\nB) y", answer="A")
    assert task_prompt(already) == already.question
    code = Task(question="What does print(2) print?", answer="2")
    assert task_prompt(code) == code.question
