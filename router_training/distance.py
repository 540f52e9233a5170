"""Out-of-scope detection by distance to the training data in the encoder's embedding space.

A fine-tuned encoder places the queries of each label in a compact region of its pooled
embedding space; a query far from every in-scope label's region is out of scope even when
the classifier's softmax is confident (softmax only compares the labels with one another).
The detector keeps, per in-scope label, the mean of the training rows' pooled embeddings and
one shared covariance (fitted on the same rows, shrunk towards its diagonal), and scores a
query by its smallest Mahalanobis distance to a label mean. The abstain threshold on that
distance is chosen on the validation rows, for the share of in-scope validation queries it
may flag (``DistanceDetector.calibrate``), never on out-of-scope rows.

Saved as ``oos_distance.npz`` (no pickle): ``means`` (labels x dim), ``whiten`` (dim x dim,
so that ``||(x - mean) @ whiten||^2`` is the squared Mahalanobis distance), ``labels`` (the
label index of each mean row) and ``threshold``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["DISTANCE_FILE", "DistanceDetector"]

DISTANCE_FILE = "oos_distance.npz"
_SHRINK = 0.05


class DistanceDetector:
    """Smallest Mahalanobis distance to an in-scope label's training mean."""

    def __init__(
        self, means: np.ndarray, whiten: np.ndarray, labels: np.ndarray, threshold: float
    ) -> None:
        if means.shape[0] != labels.shape[0] or means.shape[1] != whiten.shape[0]:
            raise ValueError(
                f"distance detector shapes disagree: means {means.shape}, whiten "
                f"{whiten.shape}, labels {labels.shape}"
            )
        self.means = np.asarray(means, np.float32)
        self.whiten = np.asarray(whiten, np.float32)
        self.labels = np.asarray(labels, np.int64)
        self.threshold = float(threshold)
        self._means_w = self.means @ self.whiten

    @classmethod
    def fit(
        cls, pooled: np.ndarray, targets: np.ndarray, oos_index: int | None
    ) -> DistanceDetector:
        """Label means and the shared, diagonally shrunk covariance of in-scope rows."""
        keep = targets != oos_index if oos_index is not None else np.ones(len(targets), bool)
        x, y = np.asarray(pooled, np.float64)[keep], targets[keep]
        labels = np.unique(y)
        means = np.stack([x[y == label].mean(axis=0) for label in labels])
        centred = x - means[np.searchsorted(labels, y)]
        covariance = centred.T @ centred / max(len(x) - 1, 1)
        covariance = (1 - _SHRINK) * covariance + _SHRINK * np.diag(np.diag(covariance))
        covariance += 1e-6 * np.eye(len(covariance))
        values, vectors = np.linalg.eigh(covariance)
        whiten = vectors / np.sqrt(np.maximum(values, 1e-9))
        return cls(means, whiten, labels, threshold=np.inf)

    def distances(self, pooled: np.ndarray) -> np.ndarray:
        """The smallest squared Mahalanobis distance of each row to a label mean."""
        projected = np.asarray(pooled, np.float32) @ self.whiten
        squared = (
            (projected**2).sum(axis=1, keepdims=True)
            - 2.0 * projected @ self._means_w.T
            + (self._means_w**2).sum(axis=1)[None, :]
        )
        return np.maximum(squared.min(axis=1), 0.0)  # type: ignore[no-any-return]

    def calibrate(self, pooled: np.ndarray, in_scope: np.ndarray, flag_rate: float) -> float:
        """Set the threshold flagging ``flag_rate`` of the in-scope validation rows (the
        ``1 - flag_rate`` quantile of their distances); returns it."""
        distances = self.distances(pooled[in_scope])
        self.threshold = (
            float(np.quantile(distances, 1.0 - flag_rate)) if len(distances) else np.inf
        )
        return self.threshold

    def flags(self, pooled: np.ndarray) -> np.ndarray:
        """Rows whose distance is above the threshold (out of scope)."""
        return self.distances(pooled) > self.threshold  # type: ignore[no-any-return]

    def save(self, directory: Path) -> str:
        np.savez(
            directory / DISTANCE_FILE,
            means=self.means,
            whiten=self.whiten,
            labels=self.labels,
            threshold=np.asarray(self.threshold),
        )
        return DISTANCE_FILE

    @classmethod
    def load(cls, directory: Path) -> DistanceDetector:
        with np.load(directory / DISTANCE_FILE, allow_pickle=False) as arrays:
            return cls(
                arrays["means"], arrays["whiten"], arrays["labels"], float(arrays["threshold"])
            )
