"""Held-out answer loss and exact-match accuracy, for the base model or with an adapter.

The answer-extraction rule (:func:`extract_answer`), kept simple on purpose:

- multiple choice (the expected answer is one letter A-D): the question gets the line
  ``MC_INSTRUCTION`` appended (unless it already asks for a letter: without it the model starts
  reasoning and names no letter within a short budget); the answer is the first standalone
  capital letter A-D in the output (not part of a word: "B", "(B)", "B." and "Answer: B" count,
  "Bob" does not);
- anything else: the first non-empty line that is not a Markdown code fence, stripped. It is
  right when it equals the expected answer, or when it contains the expected answer exactly
  inside backticks or quotes (```The output is `42`.```). For a multi-line expected answer the
  same number of lines is compared, ignoring code fences.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from adapter_training.data import Example, Task
from adapter_training.encoding import IGNORE_INDEX, collate, encode_example

__all__ = [
    "MC_INSTRUCTION",
    "answer_loss_sum",
    "exact_match",
    "extract_answer",
    "generate_answers",
    "heldout_loss",
    "is_correct",
    "perplexity",
    "task_prompt",
]

_LETTER = re.compile(r"(?<![A-Za-z])([A-D])(?![A-Za-z])")
_MULTIPLE_CHOICE = re.compile(r"[A-D]")
MC_INSTRUCTION = "Answer with the letter (A, B, C or D) only."


def task_prompt(task: Task) -> str:
    """The question as asked: multiple choice gets :data:`MC_INSTRUCTION` appended."""
    if _MULTIPLE_CHOICE.fullmatch(task.answer.strip()) and "letter" not in task.question.lower():
        return f"{task.question}\n{MC_INSTRUCTION}"
    return task.question


def answer_loss_sum(model: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    """(summed cross-entropy over the labelled tokens, their count) for one batch.

    The output projection runs only on the positions that carry a label: on a 0.5B model with a
    152k vocabulary it is over a quarter of the forward pass, and prompt positions need none.
    """
    import torch.nn.functional as F

    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = causal_lm.get_decoder()(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE_INDEX
    logits = causal_lm.get_output_embeddings()(hidden[:, :-1][keep]).float()
    return F.cross_entropy(logits, targets[keep], reduction="sum"), int(keep.sum())


def heldout_loss(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    batch_size: int = 8,
    max_length: int = 256,
) -> float:
    """Mean cross-entropy (nats) per answer token, same masking as training."""
    import torch

    encoded = [encode_example(tokenizer, ex, max_length) for ex in examples]
    encoded = [e for e in encoded if e.answer_tokens]
    encoded.sort(key=lambda e: len(e.input_ids))  # little padding; the result is order-free
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(encoded), batch_size):
            batch = collate(encoded[start : start + batch_size], tokenizer.pad_token_id)
            loss_sum, n = answer_loss_sum(model, batch)
            total += float(loss_sum)
            count += n
    model.train(was_training)
    if not count:
        raise ValueError("no example has an answer token left within max_length")
    return total / count


def perplexity(loss: float) -> float:
    """exp(mean answer-token loss in nats)."""
    return math.exp(loss)


def extract_answer(output: str, expected: str) -> str:
    """The part of ``output`` compared with ``expected`` (rule in the module docstring)."""
    if _MULTIPLE_CHOICE.fullmatch(expected.strip()):
        match = _LETTER.search(output)
        return match.group(1) if match else ""
    lines = [line.strip() for line in output.splitlines()]
    lines = [line for line in lines if line and not line.startswith("```")]
    wanted = max(1, len(expected.strip().splitlines()))
    return "\n".join(lines[:wanted])


def is_correct(output: str, expected: str) -> bool:
    """Does ``output`` answer ``expected`` under :func:`extract_answer`'s rule."""
    expected = "\n".join(line.strip() for line in expected.strip().splitlines())
    got = extract_answer(output, expected)
    if got == expected:
        return True
    if _MULTIPLE_CHOICE.fullmatch(expected) or "\n" in expected:
        return False
    quoted = (f"`{expected}`", f'"{expected}"', f"'{expected}'")
    return any(q in got for q in quoted)


def generate_answers(
    model: Any,
    tokenizer: Any,
    questions: Sequence[str],
    *,
    max_new_tokens: int = 24,
    batch_size: int = 8,
) -> list[str]:
    """Greedy answers to single-turn questions through the chat template (left-padded)."""
    import torch

    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        for q in questions
    ]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    outputs: list[str] = []
    try:
        with torch.inference_mode():
            for start in range(0, len(prompts), batch_size):
                inputs = tokenizer(
                    prompts[start : start + batch_size],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                )
                generated = model.generate(
                    **inputs,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
                new = generated[:, inputs["input_ids"].shape[1] :]
                outputs.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return outputs


def exact_match(
    model: Any, tokenizer: Any, tasks: Sequence[Task], *, max_new_tokens: int = 24
) -> dict[str, Any]:
    """Accuracy on ``tasks`` with the outputs, so a reader can check the extraction."""
    outputs = generate_answers(
        model, tokenizer, [task_prompt(t) for t in tasks], max_new_tokens=max_new_tokens
    )
    rows = [
        {"answer": t.answer, "output": out, "correct": is_correct(out, t.answer)}
        for t, out in zip(tasks, outputs, strict=True)
    ]
    correct = sum(1 for row in rows if row["correct"])
    return {"accuracy": correct / len(rows) if rows else 0.0, "correct": correct, "rows": rows}
