"""The evaluation matrix (base and every adapter x every domain) and its Markdown table."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adapter_training.data import Example, Task
from adapter_training.evaluate import exact_match, heldout_loss

__all__ = ["BASE_ROW", "evaluate_matrix", "markdown_table"]

BASE_ROW = "base"


def _row(
    model: Any,
    tokenizer: Any,
    heldout: Mapping[str, Sequence[Example]],
    tasks: Mapping[str, Sequence[Task]],
    max_new_tokens: int,
) -> dict[str, Any]:
    started = time.perf_counter()
    row: dict[str, Any] = {
        "loss": {d: heldout_loss(model, tokenizer, ex) for d, ex in heldout.items()},
        "tasks": {
            d: exact_match(model, tokenizer, ts, max_new_tokens=max_new_tokens)
            for d, ts in tasks.items()
        },
    }
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def evaluate_matrix(
    base_model_dir: str | Path,
    adapter_dirs: Mapping[str, str | Path],
    heldout: Mapping[str, Sequence[Example]],
    tasks: Mapping[str, Sequence[Task]],
    *,
    threads: int = 2,
    max_new_tokens: int = 24,
) -> dict[str, dict[str, Any]]:
    """Rows ``base`` and ``+<name>``: held-out loss per domain and task accuracy per domain.

    The base model is loaded once; each adapter is attached with PEFT, evaluated and removed.
    """
    import torch
    from peft import PeftModel

    from adapter_training.train import load_base

    torch.set_num_threads(threads)
    model, tokenizer = load_base(base_model_dir)
    rows = {BASE_ROW: _row(model, tokenizer, heldout, tasks, max_new_tokens)}
    for name, path in adapter_dirs.items():
        peft_model = PeftModel.from_pretrained(model, str(path))
        rows[f"+{name}"] = _row(peft_model, tokenizer, heldout, tasks, max_new_tokens)
        model = peft_model.unload()
    return rows


def markdown_table(rows: Mapping[str, Mapping[str, Any]], domains: Sequence[str]) -> str:
    """One line per model: held-out loss (nats/answer token) and task exact match per domain."""
    head = ["model"]
    head += [f"loss {d}" for d in domains]
    head += [f"EM {d}" for d in domains]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in rows.items():
        cells = [name]
        cells += [f"{row['loss'][d]:.3f}" if d in row["loss"] else "n/a" for d in domains]
        for d in domains:
            result = row["tasks"].get(d)
            cells.append(
                f"{result['accuracy']:.3f} ({result['correct']}/{len(result['rows'])})"
                if result
                else "n/a"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
