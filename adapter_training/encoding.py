"""Turning examples into token ids and loss labels, and into padded batches.

The prompt is rendered with the tokenizer's own chat template (``add_generation_prompt=True``)
and tokenized alone, exactly as the serving engine will see it. The rest of the full rendering
(the answer, ``<|im_end|>`` and the template's trailing newline) is tokenized separately and
appended. Only the answer tokens and the end-of-turn token carry labels; everything else is
``IGNORE_INDEX`` so the loss is the answer's cross-entropy.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from adapter_training.data import Example

__all__ = [
    "END_OF_TURN",
    "IGNORE_INDEX",
    "Encoded",
    "batch_order",
    "collate",
    "encode_example",
    "mask_prompt",
]

IGNORE_INDEX = -100
END_OF_TURN = "<|im_end|>"


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]

    @property
    def answer_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def mask_prompt(
    prompt_ids: Sequence[int], completion_ids: Sequence[int], end_id: int, max_length: int
) -> Encoded:
    """Concatenate prompt and completion; label the completion up to and including ``end_id``.

    Tokens after the first ``end_id`` of the completion (the template's newline) are dropped:
    they are never generated. The sequence is cut at ``max_length`` from the right, so a long
    answer loses its tail; the result may have no labelled token, callers skip those.
    """
    completion = list(completion_ids)
    if end_id in completion:
        completion = completion[: completion.index(end_id) + 1]
    input_ids = [*prompt_ids, *completion][:max_length]
    labels = [IGNORE_INDEX] * len(prompt_ids) + completion
    return Encoded(input_ids=input_ids, labels=labels[:max_length])


def render(tokenizer: Any, example: Example) -> tuple[str, str]:
    """(prompt text, completion text) from the tokenizer's chat template."""
    prompt = tokenizer.apply_chat_template(
        example.prompt, tokenize=False, add_generation_prompt=True
    )
    full = tokenizer.apply_chat_template(example.as_dicts(), tokenize=False)
    if not full.startswith(prompt):
        raise ValueError(
            "the chat template renders the prompt differently inside the full conversation; "
            "this model's template cannot be split into prompt and answer"
        )
    return prompt, full[len(prompt) :]


def encode_example(tokenizer: Any, example: Example, max_length: int) -> Encoded:
    """Token ids and labels for one example (see :func:`mask_prompt`)."""
    prompt, completion = render(tokenizer, example)
    end_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    return mask_prompt(prompt_ids, completion_ids, end_id, max_length)


def batch_order(
    lengths: Sequence[int], batch_size: int, seed: int, group: int = 8
) -> list[list[int]]:
    """Shuffled batches of indices, similar lengths together to waste little padding.

    Shuffle with ``random.Random(seed)``, sort each window of ``group`` batches by length,
    cut it into batches, then shuffle the batches. Deterministic for a seed.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * group
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def collate(items: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    """Right-pad to the longest item of the batch; tensors for ``model(**batch)``."""
    import torch

    width = max(len(item.input_ids) for item in items)
    ids, labels, mask = [], [], []
    for item in items:
        pad = width - len(item.input_ids)
        ids.append(item.input_ids + [pad_id] * pad)
        labels.append(item.labels + [IGNORE_INDEX] * pad)
        mask.append([1] * len(item.input_ids) + [0] * pad)
    return {
        "input_ids": torch.tensor(ids, dtype=torch.long),
        "attention_mask": torch.tensor(mask, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
    }
