"""Static sentence vectors distilled from a pretrained encoder (the model2vec idea).

Every vocabulary token is run through the encoder once, alone (``[CLS] token [SEP]``,
mean-pooled), giving a table of token vectors. A query's vector is then the IDF-weighted mean
of its tokens' rows, L2-normalised: a sparse-times-dense product, microseconds per query,
no transformer at serving time. The table carries what the pretrained encoder knows about
words the router's training data never showed, which the TF-IDF features cannot.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["STATIC_FILES", "StaticEmbedder"]

log = logging.getLogger("router_training")
STATIC_FILES = ("embed_tokenizer.json", "embed_vectors.npz")
_MAX_TOKENS = 256


class StaticEmbedder:
    """Token-vector table + per-token weights + the encoder's tokenizer."""

    def __init__(self, tokenizer: Any, vectors: np.ndarray, weights: np.ndarray) -> None:
        if vectors.shape[0] != weights.shape[0]:
            raise ValueError(f"{vectors.shape[0]} token vectors but {weights.shape[0]} weights")
        if tokenizer.get_vocab_size() > vectors.shape[0]:
            raise ValueError("the tokenizer has more tokens than the vector table")
        self._tokenizer = tokenizer
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._weights = weights.astype(np.float32)
        self.dim = int(vectors.shape[1])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 1:  # no scipy for one query: its per-call overhead dominates
            ids = self._tokenizer.encode(texts[0], add_special_tokens=False).ids[:_MAX_TOKENS]
            ids = ids or [self._unknown]
            pooled = self._weights[ids] @ self._vectors[ids]
            return (pooled / max(float(np.linalg.norm(pooled)), 1e-12))[None, :]  # type: ignore[no-any-return]
        from scipy.sparse import csr_matrix

        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        rows: list[int] = []
        cols: list[int] = []
        for row, encoding in enumerate(encodings):
            ids = encoding.ids[:_MAX_TOKENS] or [self._unknown]
            rows.extend([row] * len(ids))
            cols.extend(ids)
        cols_array = np.asarray(cols, dtype=np.int64)
        weights = self._weights[cols_array]
        matrix = csr_matrix(
            (weights, (np.asarray(rows), cols_array)), shape=(len(texts), len(self._weights))
        )
        pooled = np.asarray(matrix @ self._vectors)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)  # type: ignore[no-any-return]

    @property
    def _unknown(self) -> int:
        token = self._tokenizer.token_to_id("[UNK]")
        return 0 if token is None else int(token)

    def save(self, directory: Path) -> list[str]:
        self._tokenizer.save(str(directory / STATIC_FILES[0]))
        np.savez(
            directory / STATIC_FILES[1],
            vectors=self._vectors.astype(np.float16),
            weights=self._weights,
        )
        return list(STATIC_FILES)

    @classmethod
    def load(cls, directory: Path) -> StaticEmbedder:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(directory / STATIC_FILES[0]))
        with np.load(directory / STATIC_FILES[1], allow_pickle=False) as arrays:
            return cls(tokenizer, arrays["vectors"].astype(np.float32), arrays["weights"])

    @classmethod
    def distil(cls, base_model: Path, texts: Sequence[str], *, progress: bool) -> StaticEmbedder:
        """Build the table from ``base_model`` and IDF weights from ``texts``."""
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(base_model / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        vectors = _token_table(base_model, tokenizer, progress)
        return cls(tokenizer, vectors, _idf(tokenizer, texts, len(vectors)))


def _token_table(base_model: Path, tokenizer: Any, progress: bool, batch: int = 512) -> np.ndarray:
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModel

    model = AutoModel.from_pretrained(base_model, local_files_only=True).eval()
    size = tokenizer.get_vocab_size()
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if cls_id is None or sep_id is None:
        raise ValueError(f"{base_model}: the tokenizer has no [CLS]/[SEP] tokens (BERT-style)")
    table = np.zeros((size, model.config.hidden_size), dtype=np.float32)
    starts = range(0, size, batch)
    # bf16 halves the time where the CPU has native bf16 (cosine to fp32 >= 0.9999 measured);
    # the table is stored as float16 anyway
    fast = bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
    for start in tqdm(starts, desc="token vectors", disable=not progress):
        ids = torch.tensor([[cls_id, i, sep_id] for i in range(start, min(size, start + batch))])
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
            hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids))[0]
        table[start : start + len(ids)] = hidden.float().mean(dim=1).numpy()
    return table


def _idf(tokenizer: Any, texts: Sequence[str], size: int) -> np.ndarray:
    """Smoothed IDF of every token over ``texts`` (unseen tokens get the largest weight)."""
    document_frequency = np.zeros(size, dtype=np.float64)
    for encoding in tokenizer.encode_batch(list(texts), add_special_tokens=False):
        document_frequency[np.unique(np.asarray(encoding.ids, dtype=np.int64))] += 1
    return (np.log((1 + len(texts)) / (1 + document_frequency)) + 1).astype(np.float32)  # type: ignore[no-any-return]
