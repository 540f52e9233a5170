"""`build_tiny_models`: tokenizer, small and large Llama models and domain LoRA adapters.

The output is valid only as a whole: everything is built in `tiny.tmp-<pid>/` beside the
final directory, the manifest is written last, and the directory is renamed into place. A
build that dies half-way leaves a temp dir that the next build removes, never a `tiny/`
that looks complete. A file lock serializes concurrent builds of one state dir.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..paths import exclusive_lock
from .data import ADAPTER_DOMAINS, DOMAINS, Corpus, corpus_bytes, load_corpus
from .manifest import (
    ModelPaths,
    compute_fingerprint,
    tiny_model_paths,
    up_to_date_manifest,
)
from .spec import BUILDER_VERSION, DEFAULT_SPEC, BuildSpec

TORCH_THREADS = 1
"""One intra-op thread. These models are so small that on the shared 2-core machines two
threads spent most of their time synchronizing: a training step measured 6-10x slower with
2 threads than with 1 while other jobs ran. Fixed (not adaptive) so builds stay reproducible."""

__all__ = [
    "ModelPaths",
    "build_tiny_models",
    "current_fingerprint",
    "evaluate_loss",
    "tiny_model_paths",
    "up_to_date",
]


def current_fingerprint(spec: BuildSpec = DEFAULT_SPEC) -> str:
    return compute_fingerprint(corpus_bytes(), spec.to_dict(), BUILDER_VERSION)


def up_to_date(state_dir: Path, spec: BuildSpec = DEFAULT_SPEC) -> dict[str, Any] | None:
    """The manifest when the models under `state_dir` match the current corpus and spec."""
    return up_to_date_manifest(
        tiny_model_paths(state_dir), current_fingerprint(spec), ADAPTER_DOMAINS
    )


def build_tiny_models(
    state_dir: Path, *, force: bool = False, progress: bool = True, spec: BuildSpec = DEFAULT_SPEC
) -> dict[str, Any]:
    """Build (or find up to date) the local models under `<state_dir>/tiny/`; the manifest.

    Without `force`, a build whose fingerprint matches is left untouched and returned at once.
    """
    state_dir = Path(state_dir)
    paths = tiny_model_paths(state_dir)
    fingerprint = current_fingerprint(spec)
    if not force and (found := up_to_date_manifest(paths, fingerprint, ADAPTER_DOMAINS)):
        return found
    state_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(state_dir / "tiny.lock"):
        # Another process may have finished the same build while we waited for the lock.
        if not force and (found := up_to_date_manifest(paths, fingerprint, ADAPTER_DOMAINS)):
            return found
        _remove_leftovers(state_dir)
        tmp = ModelPaths(root=state_dir / f"tiny.tmp-{os.getpid()}")
        try:
            manifest = _build_into(tmp, paths, spec, fingerprint, progress)
            _move_into_place(tmp.root, paths.root)
        finally:
            shutil.rmtree(tmp.root, ignore_errors=True)
    return manifest


def evaluate_loss(model_dir: Path, adapter_dir: Path | None, texts: list[str]) -> float:
    """Held-out loss (mean cross-entropy per token, nats) of a saved model, optionally with a
    saved LoRA adapter, on `texts` (each scored as `<s> text </s>`)."""
    from .training import heldout_loss, load_for_eval

    model, tokenizer = load_for_eval(
        Path(model_dir), None if adapter_dir is None else Path(adapter_dir)
    )
    return heldout_loss(model, tokenizer, texts)


def _remove_leftovers(state_dir: Path) -> None:
    """Temp and old dirs of interrupted builds (safe: we hold the build lock)."""
    for pattern in ("tiny.tmp-*", "tiny.old-*"):
        for leftover in state_dir.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


def _move_into_place(built: Path, final: Path) -> None:
    """Swap the finished build in: two renames, never a partially written `final`."""
    old = final.with_name(f"tiny.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    built.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _losses(model: Any, tokenizer: Any, corpus: Corpus) -> dict[str, float]:
    from .training import heldout_loss

    losses = {d: round(heldout_loss(model, tokenizer, corpus.held_out[d]), 4) for d in DOMAINS}
    losses["mean"] = round(sum(losses[d] for d in DOMAINS) / len(DOMAINS), 4)
    return losses


def _build_into(
    out: ModelPaths, final: ModelPaths, spec: BuildSpec, fingerprint: str, progress: bool
) -> dict[str, Any]:
    import torch

    started = time.perf_counter()
    from transformers.utils import logging as hf_logging

    threads = torch.get_num_threads()
    torch.set_num_threads(TORCH_THREADS)
    hf_logging.disable_progress_bar()  # its load/save bars would interleave with ours
    try:
        corpus = load_corpus()
        tokenizer = _build_tokenizer(out, corpus, spec, progress)
        models = {
            name: _build_base(name, out, corpus, tokenizer, spec, progress)
            for name in ("small", "large")
        }
        adapters = {
            domain: _build_adapter(domain, out, final, corpus, tokenizer, spec, progress)
            for domain in ADAPTER_DOMAINS
        }
    finally:
        torch.set_num_threads(threads)
        hf_logging.enable_progress_bar()
    manifest = {
        "builder_version": BUILDER_VERSION,
        "fingerprint": fingerprint,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_seconds": round(time.perf_counter() - started, 1),
        "spec": spec.to_dict(),
        "tokenizer": _tokenizer_info(tokenizer),
        "models": models,
        "adapters": adapters,
    }
    text = json.dumps(manifest, indent=2) + "\n"
    out.manifest.write_text(text, encoding="utf-8")
    return json.loads(text)  # exactly what a later up-to-date check returns (lists, not tuples)


def _build_tokenizer(out: ModelPaths, corpus: Corpus, spec: BuildSpec, progress: bool) -> Any:
    from tqdm.auto import tqdm

    from .tokenizer import save_tokenizer, to_hf, train_tokenizer

    with tqdm(total=1, desc="tokenizer", disable=not progress) as bar:
        texts = [
            line for part in (corpus.train, corpus.held_out) for d in DOMAINS for line in part[d]
        ]
        tokenizer = to_hf(train_tokenizer(texts, spec.vocab_size))
        for model_dir in (out.small, out.large):
            save_tokenizer(tokenizer, model_dir)
        bar.update(1)
    return tokenizer


def _build_base(
    name: str, out: ModelPaths, corpus: Corpus, tokenizer: Any, spec: BuildSpec, progress: bool
) -> dict[str, Any]:
    from .training import (
        chat_examples,
        count_parameters,
        encode_lines,
        new_llama,
        token_stream,
        train_causal_lm,
    )

    model_spec = spec.small if name == "small" else spec.large
    seed = spec.seed + (1 if name == "small" else 2)
    lines = corpus.all_train()
    examples = encode_lines(tokenizer, lines) + chat_examples(tokenizer, lines)
    model = new_llama(model_spec, tokenizer, seed)
    train_causal_lm(
        model,
        token_stream(examples, seed),
        steps=model_spec.steps,
        batch_size=model_spec.batch_size,
        seq_len=spec.seq_len,
        learning_rate=model_spec.learning_rate,
        seed=seed,
        desc=f"{name} model",
        progress=progress,
    )
    model_dir = out.small if name == "small" else out.large
    model.save_pretrained(str(model_dir))
    return {
        "path": model_dir.name,
        "parameters": count_parameters(model),
        "heldout_loss": _losses(model, tokenizer, corpus),
    }


def _build_adapter(
    domain: str,
    out: ModelPaths,
    final: ModelPaths,
    corpus: Corpus,
    tokenizer: Any,
    spec: BuildSpec,
    progress: bool,
) -> dict[str, Any]:
    from .training import (
        chat_examples,
        count_parameters,
        encode_lines,
        token_stream,
        train_causal_lm,
        with_lora,
    )

    seed = spec.seed + 10 + ADAPTER_DOMAINS.index(domain)
    lines = corpus.train[domain]
    model = with_lora(out.small, spec.adapter)
    train_causal_lm(
        model,
        token_stream(encode_lines(tokenizer, lines) + chat_examples(tokenizer, lines), seed),
        steps=spec.adapter.steps,
        batch_size=spec.adapter.batch_size,
        seq_len=spec.seq_len,
        learning_rate=spec.adapter.learning_rate,
        seed=seed,
        desc=f"adapter {domain}",
        progress=progress,
    )
    adapter_dir = out.adapter(domain)
    model.save_pretrained(str(adapter_dir))
    _point_adapter_at(adapter_dir, final.small)
    return {
        "path": f"adapters/{domain}",
        "base": "small",
        "trainable_parameters": count_parameters(model, trainable_only=True),
        "heldout_loss": _losses(model, tokenizer, corpus),
    }


def _point_adapter_at(adapter_dir: Path, base_dir: Path) -> None:
    """PEFT records the temp build path as the base; record where the base will really be."""
    config_path = adapter_dir / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = str(base_dir.resolve())
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _tokenizer_info(tokenizer: Any) -> dict[str, Any]:
    return {
        "vocab_size": len(tokenizer),
        "bos_token": tokenizer.bos_token,
        "eos_token": tokenizer.eos_token,
        "pad_token": tokenizer.pad_token,
        "special_token_ids": {
            t: tokenizer.convert_tokens_to_ids(t) for t in tokenizer.all_special_tokens
        },
        "chat_template": tokenizer.chat_template,
    }
