"""What a fitted scikit-learn ``TfidfVectorizer`` computes, without its per-call overhead.

``transform`` of one short query costs sklearn about 1 ms per vectorizer (input validation,
CSR assembly); character n-grams are computed in Python for every word of every query. Here
n-grams of each distinct word are computed once and cached, terms are counted with dict
lookups, and batches are assembled into one CSR matrix. Output equals sklearn's (to float
rounding) for ``norm="l2"``, ``binary=False``, with or without ``sublinear_tf``; the tests
compare the two.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["FastVectorizer"]

_CACHE_LIMIT = 200_000


class FastVectorizer:
    def __init__(self, vectorizer: Any) -> None:
        if vectorizer.norm != "l2" or vectorizer.binary:
            raise ValueError("FastVectorizer supports norm='l2' and binary=False only")
        self._vocabulary: dict[str, int] = vectorizer.vocabulary_
        self._idf = np.asarray(vectorizer.idf_, dtype=np.float64)
        self._sublinear = bool(vectorizer.sublinear_tf)
        self.size = len(self._vocabulary)
        self._terms: Callable[[str], list[int]] = self._analyzer(vectorizer)

    def _analyzer(self, vectorizer: Any) -> Callable[[str], list[int]]:
        """Text -> vocabulary columns of its terms (with repeats)."""
        vocabulary = self._vocabulary
        plain_char_wb = (
            vectorizer.analyzer == "char_wb"
            and vectorizer.lowercase
            and vectorizer.preprocessor is None
            and vectorizer.strip_accents is None
            and vectorizer.input == "content"
        )
        if not plain_char_wb:
            analyze = vectorizer.build_analyzer()

            def columns(text: str) -> list[int]:
                return [c for c in map(vocabulary.get, analyze(text)) if c is not None]

            return columns
        low, high = vectorizer.ngram_range
        cache: dict[str, list[int]] = {}

        def word_columns(word: str) -> list[int]:
            padded = f" {word} "
            found = []
            for n in range(low, high + 1):
                for offset in range(max(1, len(padded) - n + 1)):
                    column = vocabulary.get(padded[offset : offset + n])
                    if column is not None:
                        found.append(column)
                if len(padded) <= n:  # sklearn counts a short word once, then stops
                    break
            return found

        def char_columns(text: str) -> list[int]:
            out: list[int] = []
            for word in text.lower().split():
                hit = cache.get(word)
                if hit is None:
                    if len(cache) > _CACHE_LIMIT:
                        cache.clear()
                    hit = cache[word] = word_columns(word)
                out.extend(hit)
            return out

        return char_columns

    def _weights(self, columns: list[int]) -> tuple[np.ndarray, np.ndarray]:
        unique, counts = np.unique(np.asarray(columns, dtype=np.int64), return_counts=True)
        tf = counts.astype(np.float64)
        if self._sublinear:
            tf = np.log(tf) + 1.0
        values = tf * self._idf[unique]
        return unique, values / np.linalg.norm(values)

    def transform(self, text: str) -> tuple[list[int], np.ndarray]:
        """(columns, l2-normalised tf-idf values) of one text."""
        columns = self._terms(text)
        if not columns:
            return [], np.zeros(0)
        unique, values = self._weights(columns)
        return unique.tolist(), values

    def transform_many(self, texts: Sequence[str]) -> Any:
        from scipy.sparse import csr_matrix

        indptr = [0]
        indices: list[np.ndarray] = []
        data: list[np.ndarray] = []
        for text in texts:
            columns = self._terms(text)
            if columns:
                unique, values = self._weights(columns)
                indices.append(unique)
                data.append(values)
                indptr.append(indptr[-1] + len(unique))
            else:
                indptr.append(indptr[-1])
        if not indices:
            return csr_matrix((len(texts), self.size))
        return csr_matrix(
            (np.concatenate(data), np.concatenate(indices), np.asarray(indptr)),
            shape=(len(texts), self.size),
        )
