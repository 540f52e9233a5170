"""Files in and out of `spillway cascade`: outcome records and their scores, thresholds and
serve-config files, MMLU-Pro results, and the printed evaluation report.

Errors are ``click`` exceptions naming the file (and line and field where there is one).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from cascade.evaluate import Evaluation
    from cascade.outcomes import Outcome, OutcomeColumns

__all__ = [
    "DEFAULT_RELATIVE_COSTS",
    "columns_for",
    "config_prices",
    "evaluation_summary",
    "load_scored",
    "parse_price",
    "print_evaluation",
    "read_mmlu_pro",
    "read_outcome_file",
    "read_structured",
    "write_structured",
]

DEFAULT_RELATIVE_COSTS = (0.1, 1.0)
"""Per-attempt costs assumed for records without costs: only ratios matter to the metrics."""


def read_outcome_file(path: Path, score_field: str | None) -> list[Outcome]:
    """Parse and validate an outcome JSONL file; errors name the file, line and field."""
    from cascade.outcomes import OutcomeError, parse_outcomes

    def rows() -> Any:
        with path.open(encoding="utf-8") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    yield number, json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise OutcomeError(str(path), f"not valid JSON ({exc.msg})", number) from None

    try:
        return parse_outcomes(rows(), source=str(path), score_field=score_field)
    except OutcomeError as exc:
        raise click.ClickException(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{path}: not UTF-8 text ({exc.reason})") from None


def _router_scores(scorer_dir: Path, texts: Sequence[str]) -> list[float]:
    """P(label `true`) from a boolean router artifact ("was the small model enough?")."""
    from router_training.artifact import load_router

    try:
        router = load_router(scorer_dir)
    except Exception as exc:  # the artifact module's errors say what is wrong with the dir
        raise click.ClickException(f"{scorer_dir}: cannot load the router ({exc})") from None
    if "true" not in router.labels:
        raise click.ClickException(
            f"{scorer_dir}: labels are {router.labels}; a difficulty scorer must be trained on "
            "boolean labels (true = the small model was enough)"
        )
    column = router.labels.index("true")
    scores: list[float] = []
    for start in range(0, len(texts), 512):
        probabilities = router.probabilities(list(texts[start : start + 512]))
        scores.extend(float(p) for p in probabilities[:, column])
    return scores


def _signal_scores(outcomes: Sequence[Outcome], signal: str, source: Path) -> list[float]:
    from cascade.confidence import Signal, compute_confidence

    scores = []
    for outcome in outcomes:
        if outcome.logprobs is None:
            raise click.ClickException(
                f"{source}, line {outcome.line}, field 'logprobs': missing (needed by --signal)"
            )
        scores.append(compute_confidence(outcome.logprobs, Signal(signal)))
    return scores


def load_scored(
    path: Path, score_field: str | None, signal: str | None, scorer_dir: Path | None
) -> tuple[list[Outcome], list[float]]:
    """Records and one score per record, from exactly one of the three sources."""
    given = [x for x in (score_field, signal, scorer_dir) if x is not None]
    if len(given) > 1:
        raise click.UsageError("give only one of --score-field, --signal and --scorer")
    if signal == "learned":
        raise click.UsageError(
            "--signal learned is fitted from feedback on the ledger's recorded signals: use it "
            "with `calibrate --from-ledger` (for an outcome file, fit it and give its scores "
            "with --score-field)"
        )
    field = score_field or ("score" if not given else None)
    outcomes = read_outcome_file(path, field)
    if scorer_dir is not None:
        return outcomes, _router_scores(scorer_dir, [o.text for o in outcomes])
    if signal is not None:
        return outcomes, _signal_scores(outcomes, signal, path)
    missing = next((o for o in outcomes if o.score is None), None)
    if missing is not None:
        raise click.ClickException(
            f"{path}, line {missing.line}, field '{field}': missing score "
            "(name the field with --score-field, or use --signal or --scorer)"
        )
    return outcomes, [o.score for o in outcomes if o.score is not None]


def columns_for(
    outcomes: Sequence[Outcome], path: Path, small: float | None, large: float | None
) -> OutcomeColumns:
    """Metric columns; records without costs take the given defaults (else relative 0.1/1)."""
    from cascade.outcomes import OutcomeError, to_columns

    try:
        return to_columns(
            outcomes,
            small_cost=DEFAULT_RELATIVE_COSTS[0] if small is None else small,
            large_cost=DEFAULT_RELATIVE_COSTS[1] if large is None else large,
            source=str(path),
        )
    except OutcomeError as exc:
        raise click.ClickException(f"{exc} (or pass --small-cost/--large-cost)") from None


def evaluation_summary(evaluation: Evaluation) -> dict[str, Any]:
    data = evaluation.to_dict()
    data.pop("curve")
    return data


def print_evaluation(name: str, data: dict[str, Any]) -> None:
    def fmt(value: Any) -> str:
        return (
            "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
        )

    click.echo(f"== {name} ==")
    for key, value in data.items():
        if key not in ("curve", "by_route", "thresholds"):
            click.echo(f"  {key:36} {fmt(value)}")


def read_structured(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{path}: cannot read ({exc})") from None


def write_structured(path: Path, data: dict[str, Any]) -> None:
    import yaml

    if path.suffix in (".yaml", ".yml"):
        text = "# Written by `spillway cascade calibrate`.\n" + yaml.safe_dump(
            data, sort_keys=False
        )
    else:
        text = json.dumps(data, indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def parse_price(text: str, param: str) -> Any:
    """`IN,OUT` in USD per million tokens -> TokenPrice."""
    from decimal import Decimal, InvalidOperation

    from cascade.pricing import TokenPrice

    try:
        prompt, completion = (Decimal(part.strip()) for part in text.split(","))
        return TokenPrice(input_per_million=prompt, output_per_million=completion)
    except (ValueError, InvalidOperation):
        raise click.BadParameter(
            f"{text!r}: give input,output USD per million tokens, e.g. 0.18,0.18", param_hint=param
        ) from None


def config_prices(path: Path) -> tuple[Any, Any]:
    """`small.price` and `large.price` of a serve config (only those keys are read)."""
    from pydantic import ValidationError

    from cascade.pricing import TokenPrice

    data = read_structured(path)
    try:
        small, large = (TokenPrice.model_validate(data[m]["price"]) for m in ("small", "large"))
    except (KeyError, TypeError, ValidationError) as exc:
        raise click.ClickException(f"{path}: no valid small.price / large.price ({exc})") from None
    return small, large


def read_mmlu_pro(directory: Path) -> tuple[list[dict[str, Any]], list[Any], list[Any]]:
    import csv

    names = ("questions.jsonl", "correct_matrix.csv", "output_chars_matrix.csv")
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise click.ClickException(f"{directory}: missing {', '.join(missing)}")
    with (directory / names[0]).open(encoding="utf-8") as handle:
        questions = [json.loads(line) for line in handle if line.strip()]
    tables = []
    for name in names[1:]:
        with (directory / name).open(encoding="utf-8", newline="") as handle:
            tables.append(list(csv.DictReader(handle)))
    return questions, tables[0], tables[1]
