"""The TF-IDF fast path equals scikit-learn's transform; boolean labels train a router."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from router_training.artifact import load_router
from router_training.fast_tfidf import FastVectorizer
from router_training.train import train_router

CORPUS = [
    "How do I reverse a linked list in Python?",
    "a  b   c",
    "Ünïcode café naïve résumé",
    "tabs\tand\nnewlines and   spaces",
    "x",
    "",
    "the the the the sublinear counts",
]


@pytest.mark.parametrize(
    "params",
    [
        {"analyzer": "char_wb", "ngram_range": (2, 5), "sublinear_tf": True},
        {"analyzer": "char_wb", "ngram_range": (1, 3), "sublinear_tf": False},
        {"analyzer": "word", "ngram_range": (1, 2), "sublinear_tf": True},
        {"analyzer": "char", "ngram_range": (2, 4), "sublinear_tf": True},
    ],
)
def test_fast_vectorizer_equals_sklearn(params: dict[str, object]) -> None:
    vectorizer = TfidfVectorizer(**params).fit(CORPUS)  # type: ignore[arg-type]
    fast = FastVectorizer(vectorizer)
    probe = [*CORPUS, "unseen words entirely", "Python linked"]
    expected = vectorizer.transform(probe).toarray()
    assert np.allclose(fast.transform_many(probe).toarray(), expected, atol=1e-6)
    for row, text in enumerate(probe):
        columns, values = fast.transform(text)
        single = np.zeros(fast.size)
        single[columns] = values
        assert np.allclose(single, expected[row], atol=1e-6)


def test_boolean_labels_train_a_two_label_router(tmp_path: Path) -> None:
    rows = [
        {"text": f"easy question number {i} about {topic}", "small_correct": True}
        for i, topic in enumerate(["cats", "dogs", "weather", "colors"] * 10)
    ] + [
        {"text": f"prove the theorem {i} on {topic} rigorously", "small_correct": False}
        for i, topic in enumerate(["manifolds", "groups", "measures", "operators"] * 10)
    ]
    data = tmp_path / "outcomes.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = train_router(
        data, tmp_path / "r", kind="tfidf", label_field="small_correct", progress=False
    )
    router = load_router(tmp_path / "r")
    assert report.labels == ["false", "true"]
    assert router.manifest.boolean_labels
    prediction = router.predict(["prove the theorem on groups rigorously"])[0]
    assert prediction.label == "false"
    assert np.isclose(prediction.probability + prediction.runner_up_probability, 1.0)
