"""`spillway router train --from-ledger`: learn from live traffic.

Training rows come from the ledger: every routed query whose feedback corrected its route
(``POST /v1/feedback`` with ``route``) gets the corrected label; every other query the serving
router labelled with probability at least ``--confident-at`` keeps the router's label. Only
rows with query text can be used, and the ledger keeps text only for tenants that opted in
(``tenants[].keep_query_text``); without it the command says so and stops. The candidate is
trained on 80% of the rows and written only if it beats the serving router on the other 20%
(``router_training.retrain``); with ``--apply URL`` it is then put in service (``router_apply``).
``--data FILE`` adds a labelled file (e.g. the serving router's own training data) to the
training rows, never to the comparison rows.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from router_training.data import LabelledData

__all__ = ["LedgerTrainingRows", "ledger_training_rows", "train_from_ledger"]


@dataclass(frozen=True, slots=True)
class LedgerTrainingRows:
    """Texts, labels and groups (``corrected`` / ``confident``) built from ledger rows."""

    texts: list[str]
    labels: list[str]
    groups: list[str]
    without_text: Counter[str]
    """Usable rows (by group) that had no query text, so could not be used."""
    unconfident: int
    """Rows neither corrected nor confident enough to trust the router's label."""


def ledger_training_rows(rows: list[dict[str, Any]], confident_at: float) -> LedgerTrainingRows:
    """Label each ledger row (see the module docstring); keep those with text."""
    texts: list[str] = []
    labels: list[str] = []
    groups: list[str] = []
    without_text: Counter[str] = Counter()
    unconfident = 0
    for row in rows:
        if row["corrected_route"]:
            label, group = str(row["corrected_route"]), "corrected"
        elif (row["route_probability"] or 0.0) >= confident_at:
            label, group = str(row["route"]), "confident"
        else:
            unconfident += 1
            continue
        text = row["query_text"]
        if not text or not str(text).strip():
            without_text[group] += 1
            continue
        texts.append(str(text))
        labels.append(label)
        groups.append(group)
    return LedgerTrainingRows(texts, labels, groups, without_text, unconfident)


def _require_text(built: LedgerTrainingRows, total: int) -> None:
    """Stop with a clear message when the rows the training needs have no text."""
    missing = sum(built.without_text.values())
    if not built.texts:
        raise click.ClickException(
            f"none of the {total} routed ledger rows can be trained on: {missing} usable "
            f"row(s) ({dict(built.without_text)}) have no query text and "
            f"{built.unconfident} are below --confident-at. The ledger keeps query text only "
            "for tenants with keep_query_text: true in the serve config (off by default; it "
            "stores user prompts, see docs/router.md)"
        )
    if missing:
        click.echo(
            f"warning: {missing} usable ledger row(s) have no query text and were skipped "
            f"({dict(built.without_text)}); their tenants do not keep query text",
            err=True,
        )
    if "corrected" not in built.groups:
        click.echo(
            "warning: no row with a corrected route (POST /v1/feedback with route) has text; "
            "the router can only relearn its own confident labels",
            err=True,
        )


def _labelled(built: LedgerTrainingRows, source: str) -> LabelledData:
    from router_training.data import LabelledData

    digest = hashlib.sha256(
        "\n".join(f"{t}\t{lab}" for t, lab in zip(built.texts, built.labels, strict=True)).encode()
    ).hexdigest()
    return LabelledData(list(built.texts), list(built.labels), source, digest)


def train_from_ledger(
    url: str,
    serving: Path,
    out: Path,
    *,
    confident_at: float,
    extra: Path | None,
    seed: int,
    progress: bool,
    options: dict[str, Any],
) -> dict[str, Any]:
    """Read the ledger, train and compare (``retrain_if_better``); the report as a dict."""
    from orchestrator.ledger.engine import describe
    from orchestrator.ledger.errors import LedgerError
    from orchestrator.ledger.route_rows import read_route_rows
    from router_training.data import read_labelled
    from router_training.retrain import retrain_if_better

    try:
        rows = read_route_rows(url)
    except LedgerError as error:
        raise click.ClickException(f"ledger {describe(url)}: {error}") from error
    built = ledger_training_rows(rows, confident_at)
    _require_text(built, len(rows))
    report = retrain_if_better(
        _labelled(built, f"ledger {describe(url)}"),
        built.groups,
        serving,
        out,
        extra=read_labelled(extra) if extra is not None else None,
        seed=seed,
        progress=progress,
        **options,
    )
    return {
        "ledger_rows": len(rows),
        "rows_by_group": dict(Counter(built.groups)),
        "rows_without_text": dict(built.without_text),
        "rows_below_confident_at": built.unconfident,
        **report.model_dump(),
    }
