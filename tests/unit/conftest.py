"""Fixtures shared by the unit tests of the router's two placements."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router_training.samples import DOMAINS_SAMPLE
from router_training.train import train_router


@pytest.fixture(scope="module")
def difficulty_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scorer on true/false labels: here code queries are the ones 'too hard'."""
    base = tmp_path_factory.mktemp("difficulty")
    rows = [json.loads(line) for line in DOMAINS_SAMPLE.read_text().splitlines()]
    data = base / "outcomes.jsonl"
    data.write_text(
        "".join(
            json.dumps({"text": r["text"], "small_correct": r["label"] != "code"}) + "\n"
            for r in rows
        )
    )
    report = train_router(
        data, base / "scorer", kind="tfidf", label_field="small_correct", progress=False
    )
    return Path(report.artifact)
