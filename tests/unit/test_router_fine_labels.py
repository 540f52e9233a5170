"""Finer labels nested in the routing label: detection, class names, reading and splitting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router_training.data import DataError, read_labelled, stratified_split
from router_training.fine_labels import FINE_MIN_ROWS, detect_fine_field, fine_keys


def _rows(per_intent: int = 6) -> list[dict[str, object]]:
    """Two domains of three intents each, plus fields that must not be taken."""
    rows: list[dict[str, object]] = []
    for domain, intents in (
        ("bank", ("balance", "transfer", "pin")),
        ("car", ("oil", "tyre", "gas")),
    ):
        for intent in intents:
            for i in range(per_intent):
                rows.append(
                    {
                        "text": f"{intent} question {i}",
                        "label": domain,
                        "intent": intent,
                        "row_id": f"{intent}-{i}",  # unique per row: an id, not a class
                        "letter": "ab"[i % 2],  # not nested in the domains
                        "score": i,  # not text
                    }
                )
    return rows


def test_detects_the_nested_field_and_not_ids_or_crossing_fields() -> None:
    rows = _rows()
    labels = [str(row["label"]) for row in rows]
    assert detect_fine_field(rows, labels, {"text", "label"}) == "intent"
    without = [{k: v for k, v in row.items() if k != "intent"} for row in rows]
    assert detect_fine_field(without, labels, {"text", "label"}) is None


def test_a_field_with_no_more_values_than_labels_is_not_finer() -> None:
    rows = [{**row, "domain_copy": row["label"]} for row in _rows()]
    rows = [{k: v for k, v in row.items() if k != "intent"} for row in rows]
    labels = [str(row["label"]) for row in rows]
    assert detect_fine_field(rows, labels, {"text", "label"}) is None


def test_rare_pairs_fall_back_to_their_label() -> None:
    labels = ["bank"] * (FINE_MIN_ROWS + 1) + ["car"] * FINE_MIN_ROWS + ["car"]
    fine = ["pin"] * (FINE_MIN_ROWS + 1) + ["oil"] * FINE_MIN_ROWS + ["rare"]
    keys = fine_keys(labels, fine)
    assert keys[0] == "bank\tpin"
    assert keys[FINE_MIN_ROWS + 1] == "car\toil"
    assert keys[-1] == "car"


def test_read_labelled_keeps_fine_labels_through_a_split(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in _rows(10)))
    data = read_labelled(path, fine_field="auto")
    assert data.fine_field == "intent"
    assert data.fine_labels is not None and data.fine_labels[0] == "bank\tbalance"
    train, held = stratified_split(data, 0.2, 0)
    assert train.fine_labels is not None and held.fine_labels is not None
    for part in (train, held):
        for label, key in zip(part.labels, part.fine_labels or [], strict=True):
            assert key.split("\t")[0] == label
    assert read_labelled(path).fine_labels is None


def test_a_named_fine_field_missing_on_a_row_names_the_line(tmp_path: Path) -> None:
    rows = _rows()
    del rows[3]["intent"]
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataError, match=r"line 4: missing or empty field 'intent'"):
        read_labelled(path, fine_field="intent")
    # auto: the field is not on every row, so it is not taken
    assert read_labelled(path, fine_field="auto").fine_labels is None


def test_true_false_labels_get_no_finer_labels(tmp_path: Path) -> None:
    rows = [{**row, "label": row["label"] == "bank"} for row in _rows()]
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    data = read_labelled(path, fine_field="auto")
    assert data.boolean_labels and data.fine_labels is None
