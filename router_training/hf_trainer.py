"""The Hugging Face ``Trainer`` set-up for routers: weighted loss, distillation, best-epoch
weights kept in memory (no checkpoint files), early stopping on validation macro-F1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from router_training.config import TrainConfig

__all__ = ["run_trainer"]

_DISTIL_WEIGHT = 0.5


def run_trainer(
    model: Any,
    train_rows: list[dict[str, Any]],
    val_rows: list[dict[str, Any]],
    *,
    class_weights: np.ndarray,
    config: TrainConfig,
    pretrained: bool,
    work_dir: Path,
) -> dict[str, Any]:
    """Train ``model`` in place (ending with its best-validation weights); return a history."""
    from transformers import PrinterCallback, TrainingArguments

    trainer_class = _router_trainer_class(class_weights)
    keep = _keep_best(model, patience=2 if pretrained else 3)
    epochs = config.epochs or (3 if pretrained else 30)
    trainer = trainer_class(
        model=model,
        args=_arguments(TrainingArguments, config, pretrained, epochs, work_dir),
        train_dataset=train_rows,
        eval_dataset=val_rows,
        data_collator=_collate,
        compute_metrics=_macro_f1,
        callbacks=[keep, *_deadline(config.encoder_time_limit_s)],
    )
    trainer.remove_callback(PrinterCallback)  # prints log dicts to stdout without --progress
    trainer.train()
    if keep.state is not None:
        model.load_state_dict(keep.state)
    return {
        "epochs_max": epochs,
        "epochs_run": len(keep.history),
        "best_epoch": keep.best_epoch,
        "val_macro_f1_by_epoch": keep.history,
        "learning_rate": _learning_rate(config, pretrained),
    }


def _router_trainer_class(class_weights: np.ndarray) -> Any:
    """A ``Trainer`` subclass with class-weighted cross-entropy, plus a distillation term
    (KL divergence to the teacher's probabilities) for rows with ``soft_labels``."""
    import torch
    from transformers import Trainer

    weights = torch.tensor(class_weights)

    class RouterTrainer(Trainer):
        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            labels = inputs.pop("labels")
            soft = inputs.pop("soft_labels", None)
            fine = inputs.pop("fine_labels", None)
            outputs = model(**inputs)
            logits = outputs["logits"]
            loss = torch.nn.functional.cross_entropy(logits, labels, weight=weights)
            if soft is not None:
                log_probs = torch.nn.functional.log_softmax(logits, dim=-1)
                distil = torch.nn.functional.kl_div(log_probs, soft, reduction="batchmean")
                loss = (1 - _DISTIL_WEIGHT) * loss + _DISTIL_WEIGHT * distil
            if fine is not None and "fine_logits" in outputs:
                # the finer labels' head (router_training.fine_labels), weighted as the label's
                loss = loss + torch.nn.functional.cross_entropy(outputs["fine_logits"], fine)
            return (loss, outputs) if return_outputs else loss

    return RouterTrainer


def _keep_best(model: Any, patience: int) -> Any:
    """A callback that keeps ``model``'s best weights by validation macro-F1 (in memory) and
    stops training after ``patience`` evaluations without improvement."""
    from transformers import TrainerCallback

    class KeepBest(TrainerCallback):
        """Remember the best weights by validation macro-F1; stop after ``patience`` misses."""

        def __init__(self, patience: int) -> None:
            self.patience = patience
            self.best = -1.0
            self.best_epoch = 0.0
            self.state: dict[str, Any] | None = None
            self.misses = 0
            self.history: list[float] = []

        def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            score = float(kwargs["metrics"]["eval_macro_f1"])
            self.history.append(round(score, 4))
            if score > self.best:
                self.best, self.best_epoch, self.misses = score, float(state.epoch), 0
                self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                self.misses += 1
                if self.misses >= self.patience:
                    control.should_training_stop = True

    return KeepBest(patience)


def _deadline(limit_s: float | None) -> list[Any]:
    """A callback that stops training ``limit_s`` seconds from now; none without a limit.

    Stopping mid-epoch ends the epoch, and the epoch's validation still runs, so ``KeepBest``
    sees the partly trained weights. (Asking for a validation here as well ran it twice: on a
    loaded machine that cost minutes of the budget.)"""
    if limit_s is None:
        return []
    import time

    from transformers import TrainerCallback

    stop_at = time.monotonic() + limit_s

    class Deadline(TrainerCallback):
        """Stop when the time limit is reached."""

        stopped = False

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not self.stopped and time.monotonic() >= stop_at:
                self.stopped = True
                control.should_training_stop = True

    return [Deadline()]


def _learning_rate(config: TrainConfig, pretrained: bool) -> float:
    return config.learning_rate or (1e-4 if pretrained else 1e-3)


def _arguments(
    cls: Any, config: TrainConfig, pretrained: bool, epochs: float, work_dir: Path
) -> Any:
    return cls(
        output_dir=str(work_dir),
        num_train_epochs=epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=128,
        learning_rate=_learning_rate(config, pretrained),
        weight_decay=0.01,
        warmup_steps=0.06,
        lr_scheduler_type="linear",
        eval_strategy="epoch",
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=config.seed,
        data_seed=config.seed,
        disable_tqdm=not config.progress,
        remove_unused_columns=False,
        label_names=["labels"],
        dataloader_num_workers=0,
    )


def _collate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    import torch

    width = max(len(row["input_ids"]) for row in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        ids[i, :n] = torch.tensor(row["input_ids"])
        mask[i, :n] = 1
    batch = {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": torch.tensor([row["labels"] for row in rows]),
    }
    if "soft_labels" in rows[0]:
        batch["soft_labels"] = torch.tensor([row["soft_labels"] for row in rows])
    if "fine_labels" in rows[0]:
        batch["fine_labels"] = torch.tensor([row["fine_labels"] for row in rows])
    return batch


def _macro_f1(prediction: Any) -> dict[str, float]:
    from sklearn.metrics import f1_score

    logits, labels = prediction.predictions, prediction.label_ids
    predicted = np.asarray(logits).argmax(axis=-1)
    return {
        "macro_f1": float(f1_score(labels, predicted, average="macro")),
        "accuracy": float((predicted == labels).mean()),
    }
