"""Finer labels nested in the routing label (an ``intent`` within a domain), for encoders.

Labelled queries often carry a finer label than the one a router routes on: CLINC150 rows
have a domain (the label) and one of 150 intents. An encoder fine-tuned on the domains alone
spreads each domain's queries over one wide region of its embedding space, so a query of no
domain sits as close to a domain as its own queries do. Trained with a second, auxiliary head
on the finer labels (the routing head still decides), the encoder keeps each intent compact,
and the out-of-scope distance detector measures the distance to the nearest intent rather
than to the nearest domain. On CLINC150 val, with the same detector rule at 1% of in-scope
queries abstaining, after 2 epochs: in-scope accuracy / out-of-scope recall 0.976 / 0.75 with
the domains alone, 0.979 / 0.77 with the intents as finer labels (BENCHMARKS.md). Linear
models gained nothing from finer labels (MMLU-Pro's ``category`` within its four domains:
hybrid macro-F1 0.892 against 0.896), so only encoder training uses them.

``detect_fine_field`` finds such a field in the rows: a text field other than the query and
the label whose values each belong to one label (on at least 99% of the rows), with more
usable values than there are labels. The artifact is unchanged: the auxiliary head is dropped
after training.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

__all__ = ["FINE_MIN_ROWS", "detect_fine_field", "fine_keys"]

#: Rows a finer label needs to get its own class; rarer ones fall back to their label.
FINE_MIN_ROWS = 5
#: Share of rows whose finer label's most common label is their own label.
_NESTED_SHARE = 0.99
#: At most this many finer labels per label (more looks like an id, not a class).
_MAX_PER_LABEL = 50


def detect_fine_field(
    records: Sequence[Mapping[str, object]], labels: Sequence[str], exclude: set[str]
) -> str | None:
    """The field of ``records`` that holds finer labels nested in ``labels`` (see the module
    docstring), the one with the most usable values when several do; None when none does."""
    if not records:
        return None
    n_labels = len(set(labels))
    best: tuple[int, str] | None = None
    for field in sorted(set(records[0]) - exclude):
        values = [record.get(field) for record in records]
        if not all(isinstance(value, str) and value.strip() for value in values):
            continue
        usable = _usable_count([str(v) for v in values], labels)
        if n_labels < usable <= _MAX_PER_LABEL * n_labels and (best is None or usable > best[0]):
            best = (usable, field)
    return best[1] if best else None


def _usable_count(values: Sequence[str], labels: Sequence[str]) -> int:
    """Finer labels with enough rows, or 0 when the values are not nested in the labels."""
    pairs = Counter(zip(values, labels, strict=True))
    majority: dict[str, int] = {}
    for (value, _), count in pairs.items():
        majority[value] = max(majority.get(value, 0), count)
    if sum(majority.values()) < _NESTED_SHARE * len(values):
        return 0
    return sum(1 for count in pairs.values() if count >= FINE_MIN_ROWS)


def fine_keys(labels: Sequence[str], fine: Sequence[str]) -> list[str]:
    """One class name per row: label and finer label, or the label alone when that pair has
    fewer than ``FINE_MIN_ROWS`` rows."""
    pairs = Counter(zip(labels, fine, strict=True))
    return [
        f"{label}\t{value}" if pairs[(label, value)] >= FINE_MIN_ROWS else label
        for label, value in zip(labels, fine, strict=True)
    ]
