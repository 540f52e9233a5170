"""Transformer-encoder routers: the classifier module, its files, and fast inference.

Files in an artifact (kind "bert"): ``config.json`` + ``model.safetensors`` (the encoder, HF
format), ``head.safetensors`` (pooling + linear head), ``tokenizer.json`` (with truncation
set), and, for the ONNX runtime, ``model.onnx`` (the whole classifier as one graph).

Inference tokenizes with the ``tokenizers`` library directly (no Python tokenizer wrapper)
and, for batches, sorts queries by length so padding stays small.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from router_training.manifest import Manifest
from router_training.onnx_opt import OnnxOptimization, optimize_onnx

__all__ = [
    "ENCODER_FILES",
    "EncoderScorer",
    "build_classifier",
    "export_onnx",
    "export_optimized_onnx",
    "load_encoder_scorer",
    "load_torch_classifier",
    "onnx_runner",
    "save_classifier",
    "torch_runner",
]

log = logging.getLogger("router_training")
ENCODER_FILES = ("config.json", "model.safetensors", "head.safetensors", "tokenizer.json")
_SUB_BATCH = 64


def build_classifier(
    encoder: Any, n_labels: int, pooling: str, dropout: float = 0.1, n_fine: int = 0
) -> Any:
    """An encoder with masked mean (or [CLS]) pooling and a linear head; with ``n_fine``, a
    second head over finer labels whose logits (``fine_logits``) exist in training mode only,
    so neither the saved files nor the ONNX graph have it (``router_training.fine_labels``)."""
    import torch
    from torch import nn

    class PooledClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.pooling = pooling
            self.dropout = nn.Dropout(dropout)
            self.head = nn.Linear(encoder.config.hidden_size, n_labels)
            self.fine_head = nn.Linear(encoder.config.hidden_size, n_fine) if n_fine else None
            self.with_pooled = False  # also output the pooled vector (ONNX export, embeddings)

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            **_: Any,
        ) -> dict[str, torch.Tensor]:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            dropped = self.dropout(pooled)
            logits = self.head(dropped)
            if self.with_pooled:
                return {"logits": logits, "pooled": pooled}
            if self.training and self.fine_head is not None:
                return {"logits": logits, "fine_logits": self.fine_head(dropped)}
            return {"logits": logits}

    return PooledClassifier()


def save_classifier(model: Any, tokenizer: Any, directory: Path) -> list[str]:
    """Write encoder (HF format), head and tokenizer files; return their names."""
    from safetensors.torch import save_file

    model.encoder.save_pretrained(directory, safe_serialization=True)
    head = {k: v.detach().contiguous() for k, v in model.head.state_dict().items()}
    save_file(head, str(directory / "head.safetensors"))
    tokenizer.save(str(directory / "tokenizer.json"))
    return list(ENCODER_FILES)


def load_torch_classifier(directory: Path, n_labels: int, pooling: str) -> Any:
    from safetensors.torch import load_file
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(directory, local_files_only=True)
    model = build_classifier(encoder, n_labels, pooling)
    model.head.load_state_dict(load_file(str(directory / "head.safetensors")))
    return model.eval()


class EncoderScorer:
    """Logits from a saved classifier, through ONNX Runtime or torch."""

    def __init__(self, tokenizer: Any, run: Any, n_outputs: int, runtime: str) -> None:
        self._tokenizer = tokenizer
        self._run = run
        self.n_outputs = n_outputs
        self.runtime = runtime

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        return self.logits_and_pooled(texts)[0]

    def logits_and_pooled(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and pooled embeddings (None from an ONNX graph exported without them)."""
        encodings = self._tokenizer.encode_batch(list(texts))
        if len(encodings) == 1:
            ids = np.asarray([encodings[0].ids], dtype=np.int64)
            return self._run(ids, np.ones_like(ids))  # type: ignore[no-any-return]
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(encodings), self.n_outputs), dtype=np.float32)
        pooled: np.ndarray | None = None
        for start in range(0, len(order), _SUB_BATCH):
            chunk = order[start : start + _SUB_BATCH]
            width = max(len(encodings[i].ids) for i in chunk)
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            logits, vectors = self._run(ids, mask)
            out[chunk] = logits
            if vectors is not None:
                if pooled is None:
                    pooled = np.empty((len(encodings), vectors.shape[1]), dtype=np.float32)
                pooled[chunk] = vectors
        return out, pooled


def load_encoder_scorer(directory: Path, manifest: Manifest, threads: int | None = None) -> Any:
    """The scorer the manifest asks for; torch when ONNX Runtime is not installed."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=manifest.max_length or 128)
    n_labels = len(manifest.labels)
    pooling = manifest.pooling or "mean"
    runtime = manifest.runtime
    if runtime == "onnx":
        try:
            run = onnx_runner(directory / "model.onnx", threads)
        except ImportError:
            if "model.safetensors" not in manifest.files:
                raise
            log.warning("%s: onnxruntime is not installed; using torch", directory)
            runtime = "torch"
        else:
            return EncoderScorer(tokenizer, run, n_labels, "onnx")
    return EncoderScorer(
        tokenizer, torch_runner(directory, n_labels, pooling, threads), n_labels, runtime
    )


def onnx_runner(path: Path, threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    wanted = ["logits", "pooled"] if "pooled" in outputs else [outputs[0]]

    def run(ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        feed = {"input_ids": ids, "attention_mask": mask}
        result = session.run(wanted, {k: v for k, v in feed.items() if k in names})
        return result[0], (result[1] if len(result) > 1 else None)

    return run


def torch_runner(directory: Path, n_labels: int, pooling: str, threads: int | None) -> Any:
    import torch

    if threads:
        torch.set_num_threads(threads)
    model = load_torch_classifier(directory, n_labels, pooling)
    model.with_pooled = True

    def run(ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        with torch.inference_mode():
            out = model(torch.from_numpy(ids), torch.from_numpy(mask))
        return out["logits"].float().numpy(), out["pooled"].float().numpy()

    return run


def export_onnx(model: Any, path: Path, opset: int = 17) -> None:
    """Export the classifier (dynamic batch and length) with the TorchScript exporter; its
    outputs are ``logits`` and ``pooled`` (the embedding the head reads, for out-of-scope
    distances, ``router_training.distance``)."""
    import torch

    model = model.eval()
    ids = torch.ones((2, 8), dtype=torch.long)
    mask = torch.ones((2, 8), dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    model.with_pooled = True
    try:
        with torch.inference_mode():
            torch.onnx.export(
                model,
                (ids, mask),
                str(path),
                input_names=["input_ids", "attention_mask"],
                output_names=["logits", "pooled"],
                dynamic_axes={
                    "input_ids": axes,
                    "attention_mask": axes,
                    "logits": {0: "batch"},
                    "pooled": {0: "batch"},
                },
                opset_version=opset,
                dynamo=False,
            )
    finally:
        model.with_pooled = False


def export_optimized_onnx(model: Any, path: Path, optimization: OnnxOptimization) -> dict[str, int]:
    """Export the classifier to ``path`` and, unless ``optimization`` is "none", fuse (and for
    "int8" quantize) the graph in place; return the fused operator counts (see
    ``onnx_opt.optimize_onnx``)."""
    if optimization != "none":
        # ONNX Runtime's attention fusion recognises the eager attention graph, not SDPA's
        model.encoder.set_attn_implementation("eager")
    export_onnx(model, path)
    encoder_config = model.encoder.config
    return optimize_onnx(
        path,
        optimization,
        num_heads=int(encoder_config.num_attention_heads),
        hidden_size=int(encoder_config.hidden_size),
    )
