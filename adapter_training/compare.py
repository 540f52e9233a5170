"""One adapter against its base model on held-out examples: loss, perplexity, exact match, gate.

Exact match needs answers short enough to compare: it is measured on the single-turn examples
(one user message, then the answer) whose answer is one line of at most ``em_max_chars``
characters; when there are none it is reported as not measured and the gate uses the loss only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adapter_training.data import Example, Task
from adapter_training.evaluate import exact_match, heldout_loss, perplexity
from adapter_training.gate import DEFAULT_MARGIN, gate_verdict

__all__ = ["EM_MAX_CHARS", "answerable_tasks", "evaluate_adapter"]

EM_MAX_CHARS = 80


def answerable_tasks(examples: Sequence[Example], max_chars: int = EM_MAX_CHARS) -> list[Task]:
    """The examples exact match can score: one user turn and a short one-line answer."""
    tasks = []
    for example in examples:
        prompt, answer = example.messages[:-1], example.answer.strip()
        if len(prompt) != 1 or prompt[0].role != "user":
            continue
        if "\n" in answer or len(answer) > max_chars:
            continue
        tasks.append(Task(question=prompt[0].content, answer=answer))
    return tasks


def _scores(
    model: Any, tokenizer: Any, examples: Sequence[Example], tasks: Sequence[Task], max_length: int
) -> dict[str, Any]:
    loss = heldout_loss(model, tokenizer, examples, max_length=max_length)
    scores: dict[str, Any] = {"loss": loss, "perplexity": perplexity(loss)}
    if tasks:
        result = exact_match(model, tokenizer, tasks)
        scores |= {"exact_match": result["accuracy"], "exact_match_correct": result["correct"]}
    return scores


def evaluate_adapter(
    base_model_dir: str | Path,
    adapter_dir: str | Path,
    examples: Sequence[Example],
    *,
    margin: float = DEFAULT_MARGIN,
    em_max_chars: int = EM_MAX_CHARS,
    max_length: int = 256,
    threads: int = 2,
) -> dict[str, Any]:
    """``{"examples", "exact_match_examples", "base", "adapter", "gate", "seconds"}``.

    The base model is loaded once, scored, then the adapter is attached with PEFT and scored on
    the same examples with the same masking (the answer tokens only).
    """
    import torch
    from peft import PeftModel

    from adapter_training.train import load_base

    started = time.perf_counter()
    torch.set_num_threads(threads)
    tasks = answerable_tasks(examples, em_max_chars)
    model, tokenizer = load_base(base_model_dir)
    base = _scores(model, tokenizer, examples, tasks, max_length)
    adapted = PeftModel.from_pretrained(model, str(adapter_dir))
    adapter = _scores(adapted, tokenizer, examples, tasks, max_length)
    verdict = gate_verdict(
        base["loss"],
        adapter["loss"],
        margin=margin,
        base_exact_match=base.get("exact_match"),
        adapter_exact_match=adapter.get("exact_match"),
    )
    return {
        "examples": len(examples),
        "exact_match_examples": len(tasks),
        "base": base,
        "adapter": adapter,
        "gate": verdict.as_dict(),
        "seconds": round(time.perf_counter() - started, 1),
    }
