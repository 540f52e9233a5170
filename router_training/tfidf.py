"""The TF-IDF + logistic-regression router: fit, save as plain JSON/npz (no pickle), load.

Word 1–2-grams and character 2–5-grams inside word boundaries, sublinear term frequency,
multinomial logistic regression with balanced class weights. The "hybrid" kind appends a
static sentence vector (``static_embed.StaticEmbedder``) to the sparse features.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from router_training.fast_tfidf import FastVectorizer

if TYPE_CHECKING:
    from router_training.manifest import Manifest
    from router_training.static_embed import StaticEmbedder

__all__ = ["TFIDF_FILES", "TfidfScorer", "fit_tfidf", "load_tfidf_scorer"]

TFIDF_FILES = ("tfidf.json", "tfidf.npz")

_VECTORIZERS: tuple[dict[str, Any], ...] = (
    {"analyzer": "word", "ngram_range": (1, 2), "sublinear_tf": True, "min_df": 1},
    {"analyzer": "char_wb", "ngram_range": (2, 5), "sublinear_tf": True, "min_df": 2},
)


class TfidfScorer:
    """Logits of a fitted TF-IDF + LR model; cheap for one query (two sparse transforms)."""

    def __init__(
        self,
        vectorizers: list[Any],
        coef: np.ndarray,
        intercept: np.ndarray,
        embedder: StaticEmbedder | None = None,
        embed_weight: float = 1.0,
    ) -> None:
        self._vectorizers = vectorizers
        self._coef_t = np.ascontiguousarray(coef.T)
        self._intercept = intercept
        self._embedder = embedder
        self._embed_weight = embed_weight
        self._fast = [FastVectorizer(v) for v in vectorizers]

    @property
    def n_outputs(self) -> int:
        return max(2, self._coef_t.shape[1])

    def features(self, texts: Sequence[str]) -> Any:
        from scipy.sparse import csr_matrix, hstack

        parts = [v.transform(texts) for v in self._vectorizers]
        if self._embedder is not None:
            dense = self._embedder.embed(texts) * self._embed_weight
            parts.append(csr_matrix(dense.astype(np.float32)))
        return hstack(parts, format="csr")

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Scores without sklearn's transform (same numbers, a fraction of the time)."""
        scores = self._single(texts[0])[None, :] if len(texts) == 1 else self._batch(texts)
        if scores.shape[1] == 1:  # binary LR scores the second class only
            scores = np.hstack([np.zeros_like(scores), scores])
        return scores  # type: ignore[no-any-return]

    def quick_logits(self, texts: Sequence[str]) -> np.ndarray:
        """`logits`: this kind has no heavy part (``kinds.QuickScorer``)."""
        return self.logits(texts)

    def _batch(self, texts: Sequence[str]) -> np.ndarray:
        scores = np.tile(self._intercept.astype(np.float64), (len(texts), 1))
        offset = 0
        for fast in self._fast:
            block = self._coef_t[offset : offset + fast.size]
            scores += np.asarray(fast.transform_many(texts) @ block)
            offset += fast.size
        if self._embedder is not None:
            dense = self._embedder.embed(texts) * self._embed_weight
            scores += dense @ self._coef_t[offset:]
        return scores

    def _single(self, text: str) -> np.ndarray:
        """One query without scipy: its per-call overhead is ~1 ms per vectorizer."""
        scores = self._intercept.astype(np.float64)
        offset = 0
        for fast in self._fast:
            columns, values = fast.transform(text)
            if columns:
                scores = scores + values @ self._coef_t[np.asarray(columns) + offset]
            offset += fast.size
        if self._embedder is not None:
            dense = self._embedder.embed([text])[0] * self._embed_weight
            scores = scores + dense @ self._coef_t[offset:]
        return scores

    def save(self, directory: Path) -> list[str]:
        meta = []
        arrays: dict[str, np.ndarray] = {"coef": self._coef_t.T, "intercept": self._intercept}
        for index, vectorizer in enumerate(self._vectorizers):
            params = {k: v for k, v in vectorizer.get_params().items() if k != "dtype"}
            params = {k: v for k, v in params.items() if _jsonable(v)}
            vocabulary = {term: int(col) for term, col in vectorizer.vocabulary_.items()}
            meta.append({"params": params, "vocabulary": vocabulary})
            arrays[f"idf_{index}"] = vectorizer.idf_
        embedding = None
        files = list(TFIDF_FILES)
        if self._embedder is not None:
            embedding = {"weight": self._embed_weight, "dim": self._embedder.dim}
            files += self._embedder.save(directory)
        document = {"vectorizers": meta, "embedding": embedding}
        (directory / "tfidf.json").write_text(json.dumps(document))
        np.savez(directory / "tfidf.npz", **arrays)  # type: ignore[arg-type]
        return files

    @classmethod
    def load(cls, directory: Path) -> TfidfScorer:
        from sklearn.feature_extraction.text import TfidfVectorizer

        meta = json.loads((directory / "tfidf.json").read_text())
        with np.load(directory / "tfidf.npz", allow_pickle=False) as arrays:
            vectorizers = []
            for index, spec in enumerate(meta["vectorizers"]):
                params = dict(spec["params"])
                params["ngram_range"] = tuple(params["ngram_range"])
                vectorizer = TfidfVectorizer(**params, dtype=np.float32)
                vectorizer.vocabulary_ = spec["vocabulary"]
                vectorizer.idf_ = arrays[f"idf_{index}"]
                if len(vectorizer.idf_) != len(vectorizer.vocabulary_):
                    raise ValueError(f"vectorizer {index}: idf and vocabulary sizes differ")
                vectorizers.append(vectorizer)
            embedder, weight = None, 1.0
            if meta.get("embedding"):
                from router_training.static_embed import StaticEmbedder

                embedder, weight = StaticEmbedder.load(directory), meta["embedding"]["weight"]
            return cls(vectorizers, arrays["coef"], arrays["intercept"], embedder, weight)


def load_tfidf_scorer(directory: Path, manifest: Manifest) -> TfidfScorer:
    """The scorer of a "tfidf" or "hybrid" artifact (the kind registry's loader)."""
    return TfidfScorer.load(directory)


def fit_tfidf(
    texts: Sequence[str],
    targets: np.ndarray,
    *,
    seed: int,
    n_classes: int | None = None,
    c: float = 10.0,
    embedder: StaticEmbedder | None = None,
    embed_weight: float = 1.0,
) -> TfidfScorer:
    """Fit the vectorizers and a class-weighted multinomial LR on integer targets."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizers = [TfidfVectorizer(**spec, dtype=np.float32) for spec in _VECTORIZERS]
    for vectorizer in vectorizers:
        vectorizer.fit(texts)
    unfitted = TfidfScorer(vectorizers, np.zeros((1, 1)), np.zeros(1), embedder, embed_weight)
    features = unfitted.features(texts)
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed)
    model.fit(features, targets)
    coef, intercept = _expand(model, n_classes or int(targets.max()) + 1)
    return TfidfScorer(vectorizers, coef, intercept, embedder, embed_weight)


def _expand(model: Any, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients for every label index, even labels absent from the fitted classes."""
    coef = np.asarray(model.coef_, dtype=np.float32)
    intercept = np.asarray(model.intercept_, dtype=np.float32)
    if coef.shape[0] == 1 and n_classes == 2:
        return coef, intercept
    full = np.zeros((n_classes, coef.shape[1]), np.float32)
    bias = np.full(n_classes, -1e4, np.float32)
    for row, cls in enumerate(model.classes_):
        full[int(cls)] = coef[row]
        bias[int(cls)] = intercept[row]
    return full, bias


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True
