"""Read labelled queries (JSONL or CSV) with errors that name the file, the line and the fix.

Labels are strings. JSON booleans (and the strings ``true``/``false`` in CSV files, when every
label is one of them) become the labels ``"true"`` and ``"false"`` so the same trainer can learn
"is the small model enough for this query?" from outcome data.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from router_training.fine_labels import detect_fine_field, fine_keys

__all__ = [
    "OUT_OF_SCOPE_NAMES",
    "DataError",
    "LabelledData",
    "check_known_labels",
    "file_sha256",
    "find_out_of_scope_label",
    "read_labelled",
    "stratified_split",
]

#: Label names treated as "fits no label" when ``out_of_scope_label="auto"``.
OUT_OF_SCOPE_NAMES = ("out_of_scope", "out-of-scope", "oos")
_BOOL_STRINGS = {"true": "true", "false": "false"}


class DataError(ValueError):
    """A labelled-data file cannot be used; the message names the file, the line and the fix."""

    def __init__(self, path: Path | str, problem: str, fix: str, line: int | None = None) -> None:
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}. Fix: {fix}")
        self.path = Path(path)
        self.line = line


@dataclass(frozen=True)
class LabelledData:
    """Texts and their labels, in file order, with where they came from."""

    texts: list[str]
    labels: list[str]
    source: str
    sha256: str
    boolean_labels: bool = False
    lines: list[int] | None = None
    fine_labels: list[str] | None = None
    """Per row, a class finer than its label (``fine_labels.fine_keys``), or None."""
    fine_field: str | None = None
    """The field ``fine_labels`` came from."""

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def label_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.labels).items()))

    def subset(self, indices: Sequence[int], source: str | None = None) -> LabelledData:
        return LabelledData(
            texts=[self.texts[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            source=source or self.source,
            sha256=self.sha256,
            boolean_labels=self.boolean_labels,
            lines=[self.lines[i] for i in indices] if self.lines is not None else None,
            fine_labels=(
                [self.fine_labels[i] for i in indices] if self.fine_labels is not None else None
            ),
            fine_field=self.fine_field,
        )

    def line_of(self, index: int) -> int | None:
        return self.lines[index] if self.lines is not None else None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_labelled(
    path: Path | str,
    *,
    text_field: str = "text",
    label_field: str = "label",
    min_labels: int = 2,
    fine_field: str | None = None,
) -> LabelledData:
    """Read a JSONL (one object a line) or CSV (with a header) file of labelled queries.

    ``min_labels`` is 2 for training (one label cannot be learned) and 1 for evaluation.
    ``fine_field``: a field of finer labels nested in the labels, for encoder training
    (``router_training.fine_labels``); "auto" finds one if the rows have it; None: none.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found", "pass an existing JSONL or CSV file")
    raw = path.read_bytes()
    text = _decode(path, raw)
    if not text.strip():
        raise DataError(path, "the file is empty", "add one labelled query a line")
    rows = _csv_rows if _is_csv(path, text) else _jsonl_rows
    texts: list[str] = []
    labels: list[object] = []
    lines: list[int] = []
    records: list[dict[str, object]] = []
    for line, record in rows(path, text, text_field, label_field):
        texts.append(_text_value(path, line, record.get(text_field), text_field))
        labels.append(record.get(label_field))
        lines.append(line)
        if fine_field is not None:
            records.append(record)
    label_strings, boolean = _normalise_labels(path, labels, lines, label_field)
    if len(set(label_strings)) < min_labels:
        raise DataError(
            path,
            f"only one label ({label_strings[0]!r}) in {len(texts)} rows",
            "a router needs at least two labels; add queries of another label",
        )
    digest = hashlib.sha256(raw).hexdigest()
    data = LabelledData(texts, label_strings, str(path), digest, boolean, lines)
    if fine_field is None:
        return data
    return _with_fine_labels(data, records, fine_field, {text_field, label_field})


def _with_fine_labels(
    data: LabelledData, records: list[dict[str, object]], field: str, exclude: set[str]
) -> LabelledData:
    """``data`` with the finer labels of ``field`` ("auto": detected, maybe none)."""
    if field == "auto":
        if data.boolean_labels:  # true/false outcomes have no finer classes
            return data
        found = detect_fine_field(records, data.labels, exclude)
        if found is None:
            return data
        field = found
    values: list[str] = []
    for index, record in enumerate(records):
        value = record.get(field)
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
            raise DataError(
                data.source,
                f"missing or empty field {field!r} (the finer label)",
                f"give every row a {field!r}, or pass --fine-label-field none",
                data.line_of(index),
            )
        values.append(str(value).strip())
    return dataclasses.replace(data, fine_labels=fine_keys(data.labels, values), fine_field=field)


def find_out_of_scope_label(labels: Sequence[str], requested: str | None) -> str | None:
    """Resolve ``"auto"`` to a conventional out-of-scope label present in ``labels``."""
    if requested is None:
        return None
    present = set(labels)
    if requested == "auto":
        return next((name for name in OUT_OF_SCOPE_NAMES if name in present), None)
    if requested not in present:
        raise ValueError(
            f"out-of-scope label {requested!r} is not among the data's labels "
            f"{sorted(present)}; pass one of them, 'auto' or None"
        )
    return requested


def stratified_split(
    data: LabelledData, fraction: float, seed: int
) -> tuple[LabelledData, LabelledData]:
    """Hold out ``fraction`` of every label (at least one row of labels with two or more)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for index, label in enumerate(data.labels):
        by_label.setdefault(label, []).append(index)
    train: list[int] = []
    held: list[int] = []
    for label in sorted(by_label):
        indices = rng.permutation(by_label[label]).tolist()
        n_held = 0 if len(indices) < 2 else max(1, round(len(indices) * fraction))
        held.extend(indices[:n_held])
        train.extend(indices[n_held:])
    return (
        data.subset(sorted(train), f"{data.source} (train part)"),
        data.subset(sorted(held), f"{data.source} (held-out part)"),
    )


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(
            path,
            f"invalid UTF-8 (byte 0x{raw[error.start]:02x})",
            "re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8`",
            line,
        ) from None


def _is_csv(path: Path, text: str) -> bool:
    if path.suffix.lower() in {".jsonl", ".json", ".ndjson"}:
        return False
    if path.suffix.lower() in {".csv", ".tsv"}:
        return True
    return not text.lstrip().startswith("{")


def _jsonl_rows(
    path: Path, text: str, text_field: str, label_field: str
) -> Iterator[tuple[int, dict[str, object]]]:
    # split on "\n" only: str.splitlines() also splits on U+2028 and friends, which JSON
    # strings may contain unescaped
    for line, content in enumerate(text.split("\n"), start=1):
        if not content.strip():
            continue
        try:
            record = json.loads(content)
        except json.JSONDecodeError as error:
            raise DataError(
                path, f"not valid JSON ({error.msg})", "write one JSON object a line", line
            ) from None
        if not isinstance(record, dict):
            raise DataError(path, "not a JSON object", "write one JSON object a line", line)
        _require_fields(path, line, record, text_field, label_field)
        yield line, record


def _csv_rows(
    path: Path, text: str, text_field: str, label_field: str
) -> Iterator[tuple[int, dict[str, object]]]:
    dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    header = reader.fieldnames or []
    missing = [field for field in (text_field, label_field) if field not in header]
    if missing:
        raise DataError(
            path,
            f"the CSV header {header} has no column {missing[0]!r}",
            f"start the file with a header line naming the columns, e.g. "
            f"`{text_field},{label_field}`, or pass --text-field/--label-field",
            1,
        )
    for record in reader:
        line = reader.line_num
        if None in record or any(record.get(field) is None for field in header):
            raise DataError(
                path,
                f"{len(header)} columns expected",
                "quote fields that contain commas or newlines",
                line,
            )
        _require_fields(path, line, record, text_field, label_field)
        yield line, dict(record)


def _require_fields(
    path: Path, line: int, record: dict[str, object], text_field: str, label_field: str
) -> None:
    for field in (text_field, label_field):
        value = record.get(field)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise DataError(
                path,
                f"missing or empty field {field!r} (fields present: {sorted(record)})",
                f"give every row a {field!r}, or name the field with "
                f"--{'text' if field == text_field else 'label'}-field",
                line,
            )


def _text_value(path: Path, line: int, value: object, field: str) -> str:
    if not isinstance(value, str):
        raise DataError(
            path, f"field {field!r} is {type(value).__name__}, not text", "quote the text", line
        )
    return value.strip()


def _normalise_labels(
    path: Path, labels: list[object], lines: list[int], field: str
) -> tuple[list[str], bool]:
    if all(isinstance(label, bool) for label in labels):
        return ["true" if label else "false" for label in labels], True
    if all(isinstance(label, str) and label.strip().lower() in _BOOL_STRINGS for label in labels):
        return [_BOOL_STRINGS[str(label).strip().lower()] for label in labels], True
    out: list[str] = []
    for label, line in zip(labels, lines, strict=True):
        if isinstance(label, bool) or not isinstance(label, str | int):
            raise DataError(
                path,
                f"label {label!r} in field {field!r} is {type(label).__name__}",
                "use a string label (or booleans on every row); threshold scores first",
                line,
            )
        out.append(str(label).strip())
    return out, False


def check_known_labels(data: LabelledData, known: Sequence[str], what: str = "the model") -> None:
    """Raise a ``DataError`` at the first row whose label ``known`` does not contain."""
    known_set = set(known)
    for index, label in enumerate(data.labels):
        if label not in known_set:
            raise DataError(
                data.source,
                f"label {label!r} is not one {what} knows ({sorted(known_set)})",
                "evaluate on data with the model's labels, or retrain with this label",
                data.line_of(index),
            )
