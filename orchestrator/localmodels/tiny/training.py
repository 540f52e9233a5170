"""Torch side of the build: create, train and evaluate the tiny Llama models and LoRA adapters.

Imported only when a build actually runs (torch and transformers take seconds to import).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .spec import AdapterSpec, ModelSpec


def encode_lines(tokenizer: Any, lines: list[str]) -> list[list[int]]:
    """Each line as `<s> tokens </s>`: the model learns to start and to stop."""
    encoded = tokenizer(lines, add_special_tokens=True)["input_ids"]
    return [[*ids, tokenizer.eos_token_id] for ids in encoded]


def chat_examples(tokenizer: Any, lines: list[str], every: int = 2) -> list[list[int]]:
    """Every `every`-th line as a chat exchange: the user gives the line's first words, the
    assistant continues the sentence and ends its turn with `</s>` (the eos vLLM stops on).

    The continuation keeps its leading space, so its tokens are the same mid-sentence tokens
    as in plain text and the model has to carry the sentence across the role tokens: its
    answers then depend on the prompt (tried: answering with the whole line made the small
    model ignore the prompt; starting without the space gave it rare tokens to start with).
    """
    examples = []
    for line in lines[::every]:
        words = line.split()
        cut = max(1, len(words) * 2 // 5)
        messages = [{"role": "user", "content": " ".join(words[:cut])}]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tokenizer(prompt + " " + " ".join(words[cut:]), add_special_tokens=False)["input_ids"]
        examples.append([*ids, tokenizer.eos_token_id])
    return examples


def token_stream(examples: list[list[int]], seed: int) -> torch.Tensor:
    """All examples, shuffled deterministically, concatenated into one 1-D stream."""
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed))
    return torch.tensor([tok for i in order.tolist() for tok in examples[i]], dtype=torch.long)


def new_llama(spec: ModelSpec, tokenizer: Any, seed: int) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        head_dim=spec.head_dim,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def _windows(stream: torch.Tensor, batch: int, seq_len: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless random contiguous windows of the stream (packing: no padding is trained on)."""
    generator = torch.Generator().manual_seed(seed)
    high = len(stream) - seq_len
    while True:
        starts = torch.randint(0, high, (batch,), generator=generator)
        yield torch.stack([stream[s : s + seq_len] for s in starts.tolist()])


def _lr_lambda(steps: int) -> Any:
    warmup = max(1, steps // 10)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def train_causal_lm(
    model: Any,
    stream: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    seq_len: int,
    learning_rate: float,
    seed: int,
    desc: str,
    progress: bool,
) -> float:
    """AdamW with warmup and cosine decay on random windows; returns the last batch loss."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, betas=(0.9, 0.95), weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(steps))
    batches = _windows(stream, batch_size, seq_len, seed)
    model.train()
    loss_value = float("nan")
    with tqdm(range(steps), desc=desc, disable=not progress, leave=True) as bar:
        for _ in bar:
            inputs = next(batches)
            loss = model(input_ids=inputs, labels=inputs).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_value = loss.item()
            bar.set_postfix(loss=f"{loss_value:.3f}", refresh=False)
    model.eval()
    return loss_value


@torch.no_grad()
def heldout_loss(model: Any, tokenizer: Any, texts: list[str], batch_size: int = 64) -> float:
    """Mean cross-entropy per predicted token (each text as `<s> text </s>`, eos included)."""
    model.eval()
    total, count = 0.0, 0
    examples = encode_lines(tokenizer, texts)
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        width = max(len(ids) for ids in chunk)
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, seq in enumerate(chunk):
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        total += torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum"
        ).item()
        count += int((targets != -100).sum())
    if count == 0:
        raise ValueError("no tokens to evaluate: pass at least one non-empty text")
    return total / count


def with_lora(base_dir: Path, spec: AdapterSpec) -> Any:
    """A fresh copy of the saved base model wrapped with an untrained LoRA adapter."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    config = LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,
        lora_dropout=0.0,
        target_modules=list(spec.target_modules),
        task_type=TaskType.CAUSAL_LM,
    )
    return get_peft_model(base, config)


def load_for_eval(model_dir: Path, adapter_dir: Path | None) -> tuple[Any, Any]:
    """(model, tokenizer) from disk, with the adapter applied when one is given."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model: Any = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    return model, tokenizer


def count_parameters(model: Any, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
