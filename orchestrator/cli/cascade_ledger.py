"""`spillway cascade calibrate --from-ledger`: recalibrate thresholds from live traffic.

Reads ledger rows that have feedback (``POST /v1/feedback``), turns them into calibration
inputs with ``cascade.feedback`` (whose docstring explains what is and is not learnable from
them) and fits thresholds with ``cascade.calibrate``; the thresholds file has the same format
as with ``--outcomes``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from cascade.calibrate import Calibration, Target
    from cascade.confidence import LearnedSignal
    from cascade.feedback import FeedbackRecord
    from cascade.policy import CascadePolicy

__all__ = ["calibrate_from_ledger", "ledger_options", "ledger_source"]


def ledger_options(command: Any) -> Any:
    """The options of `calibrate --from-ledger`."""
    options = [
        click.option(
            "--from-ledger",
            is_flag=True,
            help="Calibrate on ledger rows with feedback (POST /v1/feedback) instead of an "
            "outcome file. Only thresholds above the highest confidence of an escalated row "
            "are learnable (the small answer was never judged there); see docs/cascade.md.",
        ),
        click.option(
            "--config",
            "config_path",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="With --from-ledger: the serve config whose ledger to read; its cascade "
            "policy also supplies each route's signal settings (first_k, quantile, learned).",
        ),
        click.option(
            "--ledger-url",
            metavar="URL",
            help="With --from-ledger: the ledger database, sqlite:///PATH or "
            "postgresql+psycopg://...",
        ),
        click.option(
            "--large-quality",
            type=click.FloatRange(0.0, 1.0),
            help="With --from-ledger: the large model's quality assumed on accepted queries "
            "(default: the mean feedback on escalated answers, per route).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def ledger_source(
    config_path: Path | None, ledger_url: str | None
) -> tuple[str, CascadePolicy | None]:
    """The ledger URL (``--ledger-url``, else the config's) and the config's cascade policy."""
    if (config_path is None) == (ledger_url is None):
        raise click.UsageError(
            "--from-ledger needs exactly one of --config FILE and --ledger-url URL"
        )
    if ledger_url is not None:
        return ledger_url, None
    from orchestrator.cli.config import load_or_exit

    assert config_path is not None
    config = load_or_exit(str(config_path))
    return config.ledger.resolved_url(), config.cascade


def _record(row: dict[str, Any], confidence: float) -> FeedbackRecord:
    from cascade.feedback import FeedbackRecord

    return FeedbackRecord(
        route=row["adapter"] or row["route"] or "base",
        confidence=confidence,
        escalated=bool(row["escalated"]),
        score=row["feedback_score"],
        small_cost=float(row["cost_small_usd"]),
        large_cost=float(row["cost_large_usd"] if row["escalated"] else row["baseline_cost_usd"]),
    )


def _no_rows() -> click.ClickException:
    return click.ClickException(
        "no ledger rows with feedback to calibrate on (feedback is stored by POST "
        "/v1/feedback; only queries the cascade decided after generation count)"
    )


def _records(rows: list[dict[str, Any]], signal: str | None) -> tuple[list[FeedbackRecord], str]:
    """Rows of one confidence signal (``signal``, else the most common) as feedback records."""
    if not rows:
        raise _no_rows()
    counts = Counter(str(row["confidence_signal"]) for row in rows)
    chosen = signal or counts.most_common(1)[0][0]
    if chosen not in counts:
        raise click.ClickException(
            f"no feedback rows were decided with signal {chosen!r} (found: {dict(counts)})"
        )
    skipped = sum(n for name, n in counts.items() if name != chosen)
    if skipped:
        click.echo(f"warning: skipped {skipped} row(s) decided with another signal", err=True)
    records = [
        _record(row, row["confidence"]) for row in rows if str(row["confidence_signal"]) == chosen
    ]
    return records, chosen


def _learned_records(
    rows: list[dict[str, Any]], base: CascadePolicy | None
) -> tuple[list[FeedbackRecord], LearnedSignal]:
    """`--signal learned`: the logistic regression fitted on the rows' recorded signals (the
    ledger's `signals`), whatever signal decided them; each row scored with it."""
    from cascade.feedback import fit_learned_from_feedback

    if not rows:
        raise _no_rows()
    kept = [row for row in rows if row["signals"] is not None]
    if len(kept) < len(rows):
        click.echo(f"warning: skipped {len(rows) - len(kept)} row(s) without signals", err=True)
    settings = base.default if base is not None else None
    learned = fit_learned_from_feedback(
        [row["signals"] for row in kept],
        [row["feedback_score"] for row in kept],
        [bool(row["escalated"]) for row in kept],
        quantile=settings.quantile if settings else 0.1,
        first_k=settings.first_k if settings else 8,
    )
    return [_record(row, learned.score_features(row["signals"])) for row in kept], learned


def _learned_base(base: CascadePolicy | None, learned: LearnedSignal) -> CascadePolicy:
    """The serving policy (or a default one) with every route on the fitted learned signal."""
    from cascade.policy import CascadePolicy, RoutePolicy, Signal

    def on_learned(route: RoutePolicy) -> RoutePolicy:
        return route.model_copy(update={"signal": Signal.learned, "learned": learned})

    start = base or CascadePolicy(default=RoutePolicy(threshold=0.0))
    return CascadePolicy(
        default=on_learned(start.default),
        routes={name: on_learned(route) for name, route in start.routes.items()},
    )


def calibrate_from_ledger(
    url: str,
    target: Target,
    *,
    base: CascadePolicy | None,
    signal: str | None,
    per_route: bool,
    min_route_records: int,
    large_quality: float | None,
) -> tuple[Calibration, dict[str, Any]]:
    """Fit thresholds on the ledger's feedback; returns them and the file's ``source``."""
    from cascade.calibrate import CalibrationError, calibrate
    from cascade.feedback import FeedbackError, feedback_outcomes
    from orchestrator.ledger.engine import describe
    from orchestrator.ledger.errors import LedgerError
    from orchestrator.ledger.feedback_rows import read_feedback_rows

    try:
        rows = read_feedback_rows(url)
    except LedgerError as error:
        raise click.ClickException(str(error)) from None
    try:
        if signal == "learned":
            records, learned = _learned_records(rows, base)
            chosen, base = signal, _learned_base(base, learned)
        else:
            records, chosen = _records(rows, signal)
        data = feedback_outcomes(
            records, min_route_records=min_route_records, large_quality=large_quality
        )
        result = calibrate(
            data.columns,
            data.scores,
            target,
            groups=data.groups if per_route else None,
            signal=chosen,
            min_route_records=1,
            small_known=data.small_known,
        )
    except (FeedbackError, CalibrationError) as error:
        raise click.ClickException(f"ledger {describe(url)}: {error}") from None
    if per_route and data.fallback_routes:
        click.echo(
            f"warning: route(s) {', '.join(data.fallback_routes)} have fewer than "
            f"{min_route_records} feedback rows and use the default threshold",
            err=True,
        )
    if base is not None:
        result = _with_base(result, base)
    source = {
        "ledger": describe(url),
        "records": len(records),
        "escalated_records": sum(r.escalated for r in records),
        "score": chosen,
        "large_quality_assumed": data.large_quality,
        "fallback_routes": data.fallback_routes,
    }
    return result, source


def _with_base(result: Calibration, base: CascadePolicy) -> Calibration:
    from dataclasses import replace

    return replace(result, base=base)
