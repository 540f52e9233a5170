"""Reading labelled queries: formats, booleans, splits and the bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router_training.data import (
    DataError,
    check_known_labels,
    find_out_of_scope_label,
    read_labelled,
    stratified_split,
)


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_reads_jsonl_and_ignores_other_fields(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {"text": " a contract ", "label": "legal", "x": 1},
            {"text": "a rash", "label": "medical"},
        ],
    )
    data = read_labelled(path)
    assert data.texts == ["a contract", "a rash"]
    assert data.labels == ["legal", "medical"]
    assert data.lines == [1, 2]
    assert len(data.sha256) == 64
    assert not data.boolean_labels


def test_reads_csv_with_custom_fields(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text('query,domain\n"hello, world",general\nsue my landlord,legal\n')
    data = read_labelled(path, text_field="query", label_field="domain")
    assert data.texts == ["hello, world", "sue my landlord"]
    assert data.label_counts == {"general": 1, "legal": 1}


def test_boolean_labels_become_true_false(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "o.jsonl",
        [{"text": "q1", "small_correct": True}, {"text": "q2", "small_correct": False}],
    )
    data = read_labelled(path, label_field="small_correct")
    assert data.labels == ["true", "false"]
    assert data.boolean_labels


def test_boolean_strings_in_csv(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_text("text,label\nq1,True\nq2,false\n")
    assert read_labelled(path).labels == ["true", "false"]


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        (b"", None, "empty"),
        (b'{"text": "a", "label": "x"}\n{"text": "b"}\n', 2, "missing or empty field 'label'"),
        (b'{"text": "a", "label": "x"}\n{"text": "b", "label": "x"}\n', None, "only one label"),
        (b'{"text": "a", "label": "x"}\n{"text": "b", "label": "y"\n', 2, "not valid JSON"),
        (b'{"text": "a", "label": "x"}\n{"text": "caf\xe9", "label": "y"}\n', 2, "UTF-8"),
        (b'{"text": "a", "label": 0.5}\n{"text": "b", "label": "y"}\n', 1, "float"),
        (b'{"text": 3, "label": "x"}\n{"text": "b", "label": "y"}\n', 1, "not text"),
    ],
)
def test_bad_jsonl_names_file_line_and_fix(
    tmp_path: Path, content: bytes, line: int | None, words: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError) as caught:
        read_labelled(path)
    message = str(caught.value)
    assert str(path) in message
    assert words in message
    assert "Fix:" in message
    assert caught.value.line == line
    if line is not None:
        assert f"line {line}" in message


def test_csv_without_header_says_to_add_one(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text("sue my landlord,legal\na rash,medical\n")
    with pytest.raises(DataError, match="header") as caught:
        read_labelled(path)
    assert "line 1" in str(caught.value)
    assert "text,label" in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_labelled(tmp_path / "nope.jsonl")


def test_unknown_label_at_eval_names_the_line(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "v.jsonl", [{"text": "a", "label": "legal"}, {"text": "b", "label": "sports"}]
    )
    data = read_labelled(path, min_labels=1)
    with pytest.raises(DataError, match="'sports'") as caught:
        check_known_labels(data, ["legal", "medical"])
    assert caught.value.line == 2


def test_stratified_split_keeps_every_label_and_is_seeded(tmp_path: Path) -> None:
    rows = [{"text": f"q{i}", "label": "a" if i % 4 else "b"} for i in range(100)]
    data = read_labelled(write_jsonl(tmp_path / "s.jsonl", rows))
    train, held = stratified_split(data, 0.2, seed=1)
    assert len(train) + len(held) == 100
    assert held.label_counts == {"a": 15, "b": 5}
    assert not set(train.texts) & set(held.texts)
    again, _ = stratified_split(data, 0.2, seed=1)
    assert again.texts == train.texts


def test_out_of_scope_auto_detection() -> None:
    assert find_out_of_scope_label(["a", "out_of_scope"], "auto") == "out_of_scope"
    assert find_out_of_scope_label(["a", "b"], "auto") is None
    assert find_out_of_scope_label(["a", "b"], None) is None
    with pytest.raises(ValueError, match="not among"):
        find_out_of_scope_label(["a", "b"], "oos")


def test_unicode_line_separators_inside_json_strings(tmp_path: Path) -> None:
    path = tmp_path / "u.jsonl"
    path.write_text(
        json.dumps({"text": "a\u2028b", "label": "x"}, ensure_ascii=False)
        + "\n"
        + json.dumps({"text": "c\x85d", "label": "y"}, ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )
    assert read_labelled(path).labels == ["x", "y"]
