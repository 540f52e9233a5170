"""The embedding-distance out-of-scope detector: distances, calibration on in-scope rows only,
flags, and the saved file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from router_training.distance import DistanceDetector
from router_training.ensemble import FLAG_MARGIN, flag_out_of_scope


def _clusters(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centres = np.array([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    labels = np.repeat([0, 1], 200)
    points = centres[labels] + rng.normal(scale=0.5, size=(400, 3))
    return points, labels


def test_far_points_are_flagged_and_near_ones_are_not(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    points, labels = _clusters(rng)
    oos_rows = rng.normal(scale=0.5, size=(20, 3)) + np.array([0.0, 0.0, 6.0])
    detector = DistanceDetector.fit(
        np.vstack([points, oos_rows]), np.concatenate([labels, np.full(20, 2)]), oos_index=2
    )
    assert detector.labels.tolist() == [0, 1]  # out-of-scope rows shape no label region
    held, _ = _clusters(np.random.default_rng(1))
    sure = np.full((len(held), 1), np.log(0.9))  # the same top probability everywhere
    threshold = detector.calibrate(held, sure, np.ones(len(held), bool), flag_rate=0.05)
    assert np.isfinite(threshold)
    assert detector.flags(held, sure).mean() <= 0.05 + 1e-9
    assert detector.flags(oos_rows, np.full((20, 1), np.log(0.9))).all()
    unsure = np.full((len(held), 1), np.log(0.2))  # a low top probability flags near points too
    assert detector.flags(held, unsure).all()
    detector.save(tmp_path)
    loaded = DistanceDetector.load(tmp_path)
    np.testing.assert_allclose(loaded.distances(oos_rows), detector.distances(oos_rows), rtol=1e-5)
    assert loaded.threshold == threshold


def test_distances_are_squared_mahalanobis() -> None:
    detector = DistanceDetector(np.zeros((1, 2)), np.diag([1.0, 0.5]), np.array([0]))
    assert detector.distances(np.array([[2.0, 2.0]]))[0] == np.float32(4.0 + 1.0)


def test_flagged_rows_get_the_out_of_scope_label_on_top() -> None:
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]]))
    flagged = flag_out_of_scope(logits, np.array([True, False]), oos_index=2)
    assert flagged[0].argmax() == 2 and flagged[0, 2] - flagged[0, 0] == FLAG_MARGIN
    assert (flagged[1] == logits[1]).all()
    assert (logits[0] == np.log([0.7, 0.2, 0.1])).all()  # the input is not changed
