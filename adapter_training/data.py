"""Training examples and answerable tasks: loading, validation and a deterministic split.

Two example shapes are accepted, one JSON object a line:

- chat (the OpenAI fine-tuning format): ``{"messages": [{"role": ..., "content": ...}, ...]}``
  where the last message is the assistant's answer (the only part that is trained);
- prompt/completion pairs: ``{"prompt": ..., "completion": ...}``, read as one user turn and
  one assistant turn.

Every problem raises :class:`DataError` naming the file, the line and what to change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ROLES",
    "DataError",
    "Example",
    "Message",
    "Task",
    "example_key",
    "load_examples",
    "load_tasks",
    "sha256_file",
    "split_examples",
]

ROLES = ("system", "user", "assistant")


class DataError(ValueError):
    """A data file that cannot be used as it is; the message says where and how to fix it."""


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Example:
    """One conversation; ``messages[-1]`` is the assistant answer to learn."""

    messages: tuple[Message, ...]

    @property
    def prompt(self) -> list[dict[str, str]]:
        """The conversation before the answer, as chat-template dicts."""
        return [{"role": m.role, "content": m.content} for m in self.messages[:-1]]

    @property
    def answer(self) -> str:
        return self.messages[-1].content

    def as_dicts(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.content} for m in self.messages]


@dataclass(frozen=True)
class Task:
    """An answerable question with one exact expected answer."""

    question: str
    answer: str


def _where(path: Path, line_no: int) -> str:
    return f"{path}, line {line_no}"


def _json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) for every non-blank line."""
    if not path.is_file():
        raise DataError(f"{path}: no such file; pass the path of a JSONL file")
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{_where(path, line_no)}: not valid JSON ({exc.msg} at column {exc.colno}); "
                    "write one JSON object per line"
                ) from None
            if not isinstance(obj, dict):
                raise DataError(
                    f"{_where(path, line_no)}: expected a JSON object, got "
                    f"{type(obj).__name__}; write one object per line"
                )
            yield line_no, obj


def _message(raw: Any, where: str, index: int) -> Message:
    if not isinstance(raw, dict):
        raise DataError(f"{where}: messages[{index}] is not an object; use {{role, content}}")
    role = raw.get("role")
    if role not in ROLES:
        raise DataError(
            f"{where}: messages[{index}] has unknown role {role!r}; use one of {', '.join(ROLES)}"
        )
    content = raw.get("content")
    if not isinstance(content, str) or not content.strip():
        raise DataError(
            f"{where}: messages[{index}] ({role}) has empty or non-string content; "
            "give every message non-empty text"
        )
    return Message(role=role, content=content)


def _parse_chat(raw_messages: Any, where: str) -> Example:
    if not isinstance(raw_messages, list) or not raw_messages:
        raise DataError(f"{where}: 'messages' must be a non-empty list of {{role, content}}")
    messages = tuple(_message(raw, where, i) for i, raw in enumerate(raw_messages))
    if messages[-1].role != "assistant":
        raise DataError(
            f"{where}: the last message is from {messages[-1].role!r}; end each conversation "
            "with the assistant's answer (the part that is trained)"
        )
    if not any(m.role == "user" for m in messages[:-1]):
        raise DataError(f"{where}: no user message before the answer; add the question")
    return Example(messages=messages)


def _parse_pair(obj: dict[str, Any], where: str) -> Example:
    prompt, completion = obj.get("prompt"), obj.get("completion")
    for name, value in (("prompt", prompt), ("completion", completion)):
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{where}: '{name}' is empty or not a string; give non-empty text")
    assert isinstance(prompt, str) and isinstance(completion, str)
    return Example(messages=(Message("user", prompt), Message("assistant", completion)))


def load_examples(path: str | Path) -> list[Example]:
    """Read chat or prompt/completion JSONL; raise :class:`DataError` on the first bad line."""
    path = Path(path)
    examples = []
    for line_no, obj in _json_lines(path):
        where = _where(path, line_no)
        if "messages" in obj:
            examples.append(_parse_chat(obj["messages"], where))
        elif "prompt" in obj or "completion" in obj:
            examples.append(_parse_pair(obj, where))
        else:
            raise DataError(
                f"{where}: missing 'messages'; write {{\"messages\": [...]}} (chat) or "
                '{"prompt": ..., "completion": ...}'
            )
    if not examples:
        raise DataError(f"{path}: no examples; the file is empty")
    return examples


def load_tasks(path: str | Path) -> list[Task]:
    """Read ``{"question": ..., "answer": ...}`` JSONL (other fields are ignored)."""
    path = Path(path)
    tasks = []
    for line_no, obj in _json_lines(path):
        question, answer = obj.get("question"), obj.get("answer")
        if not isinstance(question, str) or not question.strip():
            raise DataError(f"{_where(path, line_no)}: 'question' is missing or empty")
        if not isinstance(answer, str | int | float) or not str(answer).strip():
            raise DataError(f"{_where(path, line_no)}: 'answer' is missing or empty")
        tasks.append(Task(question=question, answer=str(answer)))
    if not tasks:
        raise DataError(f"{path}: no tasks; the file is empty")
    return tasks


def example_key(example: Example) -> str:
    """The text an example is hashed by: every role and content, in order."""
    return "\n".join(f"{m.role}: {m.content}" for m in example.messages)


def _bucket(text: str, salt: str) -> bytes:
    """A stable sort key for a text (sha256, unlike the per-process salted built-in ``hash``)."""
    return hashlib.sha256(f"{salt}\0{text}".encode()).digest()


def split_examples(
    examples: Sequence[Example], heldout_fraction: float = 1 / 6, salt: str = "heldout"
) -> tuple[list[Example], list[Example]]:
    """Split into (kept, held out), both in file order, by a stable hash of each example's text.

    The ``round(n * heldout_fraction)`` examples with the smallest sha256 of (salt, text) are
    held out: the same on every run and machine, independent of the file's order, and the
    held-out size is exact. Use another ``salt`` for a second, independent split (validation
    out of training).
    """
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    ranked = sorted(range(len(examples)), key=lambda i: _bucket(example_key(examples[i]), salt))
    held_idx = set(ranked[: round(len(examples) * heldout_fraction)])
    kept = [ex for i, ex in enumerate(examples) if i not in held_idx]
    held = [ex for i, ex in enumerate(examples) if i in held_idx]
    return kept, held


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file, read in chunks (model weights are large)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
