"""Train one LoRA adapter with PEFT on the CPU: a plain AdamW loop, deterministic for a seed.

Why a plain loop rather than the HF Trainer: every source of randomness is in view (the batch
order comes from :func:`adapter_training.encoding.batch_order`, dropout from
``torch.manual_seed``), the loss is computed only on answer tokens (see
:func:`adapter_training.evaluate.answer_loss_sum`), and early stopping keeps the best
evaluation's adapter weights in memory without checkpoint files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from adapter_training.data import Example, sha256_file
from adapter_training.encoding import Encoded, batch_order, collate, encode_example
from adapter_training.evaluate import answer_loss_sum, heldout_loss

__all__ = ["CARD_FILE", "TrainSettings", "load_base", "train_adapter"]

CARD_FILE = "card.json"


@dataclass(frozen=True)
class TrainSettings:
    """The recipe's knobs; recorded in the card as they were used."""

    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    epochs: int = 3
    learning_rate: float = 2e-4
    warmup_steps: int = 5
    weight_decay: float = 0.0
    batch_size: int = 4
    max_length: int = 256
    eval_every: int = 0  # steps between validation evaluations; 0 = once per epoch
    patience: int = 1  # evaluations without improvement before stopping
    max_steps: int = 0  # 0 = no limit beyond the epochs
    seed: int = 0
    threads: int = 2
    dtype: str = "bfloat16"


@dataclass
class _History:
    train: list[dict[str, float]] = field(default_factory=list)
    val: list[dict[str, float]] = field(default_factory=list)
    best_step: int = 0
    best_loss: float = float("inf")
    steps: int = 0
    tokens: int = 0
    seconds: float = 0.0  # wall time of the loop, validation included
    eval_seconds: float = 0.0


def _seed_everything(seed: int, threads: int) -> None:
    import random

    import numpy as np
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def load_base(base_model_dir: str | Path, dtype: str = "bfloat16") -> tuple[Any, Any]:
    """(model, tokenizer) from an HF-format directory."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_model_dir))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(base_model_dir), dtype=getattr(torch, dtype))
    return model, tokenizer


def _with_lora(model: Any, settings: TrainSettings) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    # Adapter weights stay float32 over a bfloat16 base (PEFT's autocast_adapter_dtype).
    return get_peft_model(model, config)


def _encode(tokenizer: Any, examples: Sequence[Example], max_length: int) -> list[Encoded]:
    encoded = [encode_example(tokenizer, ex, max_length) for ex in examples]
    return [e for e in encoded if e.answer_tokens]


def _lora_state(model: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}


def _restore(model: Any, state: dict[str, Any]) -> None:
    import torch

    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def _lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then linear decay to zero at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def _plan(lengths: Sequence[int], settings: TrainSettings) -> list[tuple[int, list[int]]]:
    """(epoch, batch indices) for every step; each epoch reshuffled with ``seed + epoch``."""
    plan = [
        (epoch, batch)
        for epoch in range(settings.epochs)
        for batch in batch_order(lengths, settings.batch_size, settings.seed + epoch)
    ]
    return plan[: settings.max_steps] if settings.max_steps else plan


def _evaluate_due(step: int, plan: list[tuple[int, list[int]]], every: int) -> bool:
    """After ``step`` (1-based count of finished steps): every N steps, epoch ends, the end."""
    if step == len(plan):
        return True
    if every:
        return step % every == 0
    return plan[step][0] != plan[step - 1][0]


def _step(model: Any, optimizer: Any, batch: dict[str, Any], lr: float) -> float:
    """One optimizer step on the mean answer-token loss of ``batch``; returns that loss."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss_sum, count = answer_loss_sum(model, batch)
    loss = loss_sum / max(1, count)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def _validate(
    model: Any,
    tokenizer: Any,
    val: Sequence[Example],
    max_length: int,
    history: _History,
    step: int,
) -> bool:
    """Evaluate and record; True when this is the best validation loss so far."""
    started = time.perf_counter()
    loss = heldout_loss(model, tokenizer, val, max_length=max_length)
    history.eval_seconds += time.perf_counter() - started
    history.val.append({"step": step, "loss": loss})
    if loss < history.best_loss:
        history.best_loss, history.best_step = loss, step
        return True
    return False


def _run(
    model: Any,
    tokenizer: Any,
    train: list[Encoded],
    val: Sequence[Example],
    settings: TrainSettings,
    progress: bool,
) -> _History:
    """The training loop with evaluation and early stopping; leaves the best weights loaded."""
    import torch
    from tqdm import tqdm

    plan = _plan([len(e.input_ids) for e in train], settings)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=settings.learning_rate,
        weight_decay=settings.weight_decay,
    )
    history = _History()
    started = time.perf_counter()
    _validate(model, tokenizer, val, settings.max_length, history, step=0)
    best, stale = _lora_state(model), 0
    model.train()
    with tqdm(total=len(plan), desc="train", unit="step", disable=not progress) as bar:
        for step, (epoch, indices) in enumerate(plan, start=1):
            batch = collate([train[i] for i in indices], tokenizer.pad_token_id)
            lr = settings.learning_rate * _lr_factor(step - 1, len(plan), settings.warmup_steps)
            loss = _step(model, optimizer, batch, lr)
            history.steps = step
            history.tokens += int(batch["attention_mask"].sum())
            history.train.append({"step": step, "epoch": epoch, "loss": loss})
            elapsed = time.perf_counter() - started - history.eval_seconds
            bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{history.tokens / elapsed:.0f}")
            bar.update(1)
            if not _evaluate_due(step, plan, settings.eval_every):
                continue
            if _validate(model, tokenizer, val, settings.max_length, history, step):
                best, stale = _lora_state(model), 0
            else:
                stale += 1
                if stale >= settings.patience:
                    break
    history.seconds = time.perf_counter() - started
    _restore(model, best)
    return history


def _compare_on(model: Any, tokenizer: Any, examples: Sequence[Example], max_length: int) -> dict:
    """Held-out answer loss of the base (adapter disabled) and of the trained adapter."""
    with model.disable_adapter():
        base = heldout_loss(model, tokenizer, examples, max_length=max_length)
    adapter = heldout_loss(model, tokenizer, examples, max_length=max_length)
    return {"examples": len(examples), "base_loss": base, "adapter_loss": adapter}


def _save(model: Any, out_dir: Path, base_model_name: str | None) -> None:
    """``save_pretrained`` then, if asked, the base model name the serving side resolves."""
    model.save_pretrained(str(out_dir))
    # PEFT's generated README is an empty template naming a local path; card.json says more.
    (out_dir / "README.md").unlink(missing_ok=True)
    if base_model_name:
        config_path = out_dir / "adapter_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = base_model_name
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", "utf-8")


def _card(
    base_dir: Path,
    settings: TrainSettings,
    history: _History,
    data_files: Sequence[str | Path],
    counts: dict[str, int],
) -> dict[str, Any]:
    weights = base_dir / "model.safetensors"
    train_seconds = history.seconds - history.eval_seconds
    return {
        "base_model": base_dir.name,
        "base_model_sha256": sha256_file(weights) if weights.is_file() else None,
        "data_files": {Path(f).name: sha256_file(f) for f in data_files},
        "examples": counts,
        "hyperparameters": asdict(settings),
        "seed": settings.seed,
        "steps": history.steps,
        "best_step": history.best_step,
        "train_tokens": history.tokens,
        "seconds": round(history.seconds, 1),
        "train_seconds": round(train_seconds, 1),
        "tokens_per_second": round(history.tokens / train_seconds, 1) if train_seconds else None,
        "train_loss": [{**row, "loss": round(row["loss"], 4)} for row in history.train],
        "val_loss": [{**row, "loss": round(row["loss"], 4)} for row in history.val],
    }


def train_adapter(
    base_model_dir: str | Path,
    train_examples: Sequence[Example],
    val_examples: Sequence[Example],
    out_dir: str | Path,
    *,
    settings: TrainSettings | None = None,
    heldout_examples: Sequence[Example] | None = None,
    data_files: Sequence[str | Path] = (),
    base_model_name: str | None = None,
    progress: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """Train a LoRA adapter, keep the best validation epoch, save it with a ``card.json``.

    ``overrides`` replace fields of ``settings`` (``rank=8, learning_rate=1e-3, ...``).
    ``val_examples`` drive early stopping; the card's ``heldout`` entry compares base and adapter
    on ``heldout_examples`` (or on the validation set when none are given).
    Returns the card.
    """
    from dataclasses import replace

    settings = replace(settings or TrainSettings(), **overrides)
    if "target_modules" in overrides:
        settings = replace(settings, target_modules=tuple(settings.target_modules))
    _seed_everything(settings.seed, settings.threads)
    base_dir, out = Path(base_model_dir), Path(out_dir)
    model, tokenizer = load_base(base_dir, settings.dtype)
    model = _with_lora(model, settings)
    train = _encode(tokenizer, train_examples, settings.max_length)
    history = _run(model, tokenizer, train, val_examples, settings, progress)
    compared = heldout_examples if heldout_examples is not None else val_examples
    counts = {"train": len(train), "val": len(val_examples), "heldout": len(compared)}
    card = _card(base_dir, settings, history, data_files, counts)
    card["heldout"] = _compare_on(model, tokenizer, compared, settings.max_length)
    out.mkdir(parents=True, exist_ok=True)
    _save(model, out, base_model_name)
    (out / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card
