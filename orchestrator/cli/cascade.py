"""`spillway cascade`: evaluate and calibrate the cascade offline, and build outcome files.

File reading and the router artifact live here; every computation is in ``cascade``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from cascade.evaluate import Evaluation, Mode
    from cascade.outcomes import Outcome, OutcomeColumns

DEFAULT_RELATIVE_COSTS = (0.1, 1.0)
"""Per-attempt costs assumed for records without costs: only ratios matter to the metrics."""

_OUTCOMES_HELP = (
    "Outcome JSONL: one object a line with text, small_correct, large_correct (true/false or a "
    "score in [0, 1]); optional small_cost, large_cost (USD), score, route, logprobs."
)
_MODE_HELP = (
    "cascade: the score is a confidence computed after the small model answered, so escalated "
    "queries pay for both models. route: the score is a difficulty router's probability that "
    "the small model suffices, computed before generation, so each query pays for one model. "
    "Default: route with --scorer, cascade otherwise."
)


def _score_options(command: Any) -> Any:
    """The mutually exclusive ways to get a score per record, plus the mode and default costs."""
    options = [
        click.option(
            "--score-field",
            metavar="FIELD",
            help="Use this field of each record as the score (in [0, 1]; higher = keep the "
            "small answer). The default when no other source is given is `score`.",
        ),
        click.option(
            "--signal",
            type=click.Choice(["mean_prob", "geometric_mean", "min_prob", "quantile", "first_k"]),
            help="Compute the score with this confidence signal from each record's `logprobs`.",
        ),
        click.option(
            "--scorer",
            "scorer_dir",
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            help="A router artifact directory trained on boolean labels ('was the small model "
            "enough?'); the score is its probability of label `true` for the record's text.",
        ),
        click.option("--mode", type=click.Choice(["cascade", "route"]), help=_MODE_HELP),
        click.option(
            "--small-cost",
            type=float,
            default=None,
            help="Cost (USD) of a small-model attempt for records without small_cost "
            "(default 0.1: a relative cost, with --large-cost 1.0).",
        ),
        click.option(
            "--large-cost",
            type=float,
            default=None,
            help="Cost (USD) of a large-model attempt for records without large_cost "
            "(default 1.0).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


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


def _mode(mode: str | None, scorer_dir: Path | None) -> Mode:
    chosen = mode or ("route" if scorer_dir is not None else "cascade")
    return "route" if chosen == "route" else "cascade"


def _summary(evaluation: Evaluation) -> dict[str, Any]:
    data = evaluation.to_dict()
    data.pop("curve")
    return data


def _print_evaluation(name: str, data: dict[str, Any]) -> None:
    def fmt(value: Any) -> str:
        return (
            "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
        )

    click.echo(f"== {name} ==")
    for key, value in data.items():
        if key not in ("curve", "by_route", "thresholds"):
            click.echo(f"  {key:36} {fmt(value)}")


@click.group()
def cascade() -> None:
    """Evaluate and calibrate the cascade on outcome data, and build outcome files."""


@cascade.command("eval", short_help="APGR, CPT and savings of a score on outcome data.")
@click.option(
    "--outcomes",
    "outcomes_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=_OUTCOMES_HELP,
)
@_score_options
@click.option(
    "--thresholds",
    "thresholds_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Also report the operating point of a thresholds file from `cascade calibrate` "
    "(e.g. fitted on a training split, evaluated here on held-out data).",
)
@click.option(
    "--by-route/--no-by-route",
    default=True,
    show_default=True,
    help="Also evaluate each route (domain) separately, when records carry `route`.",
)
@click.option(
    "--random-draws",
    type=click.IntRange(1, 1000),
    default=20,
    show_default=True,
    help="Random policies drawn (seeded) for the random baseline.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random policy.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def eval_command(
    outcomes_path: Path,
    score_field: str | None,
    signal: str | None,
    scorer_dir: Path | None,
    mode: str | None,
    small_cost: float | None,
    large_cost: float | None,
    thresholds_path: Path | None,
    by_route: bool,
    random_draws: int,
    seed: int,
    as_json: bool,
) -> None:
    """Deferral curve, APGR, CPT(50%)/CPT(80%) and cost saved at 95% of the large model's
    quality, with a random policy measured in the same run."""
    from dataclasses import asdict

    from cascade.calibrate import escalations, policy_from_file_data
    from cascade.evaluate import evaluate_by_route, evaluate_columns, operating_point
    from cascade.outcomes import group_by_route

    outcomes, scores = load_scored(outcomes_path, score_field, signal, scorer_dir)
    columns = columns_for(outcomes, outcomes_path, small_cost, large_cost)
    chosen = _mode(mode, scorer_dir)
    options: dict[str, Any] = {"mode": chosen, "random_draws": random_draws, "seed": seed}
    result = evaluate_columns(columns, scores, **options).to_dict()
    groups = group_by_route(outcomes)
    if by_route and len(groups) > 1:
        per_route = evaluate_by_route(columns, scores, groups, **options)
        result["by_route"] = {name: _summary(e) for name, e in per_route.items()}
    if thresholds_path is not None:
        try:
            policy = policy_from_file_data(_read_structured(thresholds_path))
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise click.ClickException(
                f"{thresholds_path}: not a thresholds file ({exc})"
            ) from None
        decided = escalations(policy, scores, [o.route for o in outcomes], mode=chosen)
        result["thresholds"] = asdict(operating_point(columns, decided, mode=chosen))
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    _print_evaluation(f"{outcomes_path} ({len(outcomes)} records)", result)
    for name, summary in result.get("by_route", {}).items():
        _print_evaluation(f"route {name or '(none)'}", summary)
    if "thresholds" in result:
        _print_evaluation(f"thresholds {thresholds_path}", result["thresholds"])


def _read_structured(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{path}: cannot read ({exc})") from None


@cascade.command("calibrate", short_help="Write thresholds that meet a target.")
@click.option(
    "--outcomes",
    "outcomes_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=_OUTCOMES_HELP,
)
@click.option(
    "--target",
    required=True,
    help="quality=X (keep >= X of the large model's quality), escalation=Y (send at most a "
    "share Y to the large model) or cost=Z (at most Z USD per 1,000 queries).",
)
@_score_options
@click.option(
    "--per-route/--global",
    default=True,
    show_default=True,
    help="Fit a threshold per route (records' `route` field) or one for all.",
)
@click.option(
    "--min-route-records",
    type=click.IntRange(1),
    default=50,
    show_default=True,
    help="Routes with fewer records are pooled and share one threshold.",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("cascade_thresholds.yaml"),
    show_default=True,
    help="Thresholds file to write: YAML (.yaml/.yml) or JSON (any other suffix).",
)
@click.option("--json", "as_json", is_flag=True, help="Also print the file's content as JSON.")
def calibrate_command(
    outcomes_path: Path,
    target: str,
    score_field: str | None,
    signal: str | None,
    scorer_dir: Path | None,
    mode: str | None,
    small_cost: float | None,
    large_cost: float | None,
    per_route: bool,
    min_route_records: int,
    out_path: Path,
    as_json: bool,
) -> None:
    """Choose thresholds that meet a target on outcome data and write them to a file the serve
    config can include (its `policy` key is a cascade policy)."""
    from cascade.calibrate import CalibrationError, calibrate, parse_target
    from cascade.outcomes import group_by_route

    try:
        parsed = parse_target(target)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--target") from None
    outcomes, scores = load_scored(outcomes_path, score_field, signal, scorer_dir)
    columns = columns_for(outcomes, outcomes_path, small_cost, large_cost)
    try:
        result = calibrate(
            columns,
            scores,
            parsed,
            groups=group_by_route(outcomes) if per_route else None,
            mode=_mode(mode, scorer_dir),
            signal=signal or "mean_prob",
            min_route_records=min_route_records,
        )
    except CalibrationError as exc:
        raise click.ClickException(f"{outcomes_path}: {exc}") from None
    source = {"outcomes": str(outcomes_path), "records": len(outcomes)}
    source["score"] = str(scorer_dir or signal or score_field or "score")
    data = result.to_dict(source)
    _write_structured(out_path, data)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        d = result.default
        click.echo(
            f"wrote {out_path}: default threshold {d.threshold:.6g} (escalation "
            f"{d.escalation_rate:.3f}, quality {d.quality:.4f} vs large {d.quality_large:.4f}, "
            f"{d.cost_per_1k:.6g} USD per 1k), {len(result.routes)} route(s)"
        )


def _write_structured(path: Path, data: dict[str, Any]) -> None:
    import yaml

    if path.suffix in (".yaml", ".yml"):
        text = "# Written by `spillway cascade calibrate`.\n" + yaml.safe_dump(
            data, sort_keys=False
        )
    else:
        text = json.dumps(data, indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _price(text: str, param: str) -> Any:
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


def _config_prices(path: Path) -> tuple[Any, Any]:
    """`small.price` and `large.price` of a serve config (only those keys are read)."""
    from pydantic import ValidationError

    from cascade.pricing import TokenPrice

    data = _read_structured(path)
    try:
        small, large = (TokenPrice.model_validate(data[m]["price"]) for m in ("small", "large"))
    except (KeyError, TypeError, ValidationError) as exc:
        raise click.ClickException(f"{path}: no valid small.price / large.price ({exc})") from None
    return small, large


def _read_mmlu_pro(directory: Path) -> tuple[list[dict[str, Any]], list[Any], list[Any]]:
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


@cascade.command("outcomes", short_help="Build an outcome file from MMLU-Pro results.")
@click.option(
    "--from-mmlu-pro",
    "mmlu_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The MMLU-Pro results directory (questions.jsonl, correct_matrix.csv, "
    "output_chars_matrix.csv), e.g. ../shared/data/mmlu_pro.",
)
@click.option("--small", required=True, help="Small model column, e.g. Meta-Llama-3_1-8B-Instruct.")
@click.option(
    "--large", required=True, help="Large model column, e.g. Meta-Llama-3_1-70B-Instruct."
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Outcome JSONL to write.",
)
@click.option(
    "--small-price",
    default="0.18,0.18",
    show_default=True,
    help="Small model's input,output USD per million tokens (default: a 2024 hosted list "
    "price for Llama-3.1-8B).",
)
@click.option(
    "--large-price",
    default="0.88,0.88",
    show_default=True,
    help="Large model's input,output USD per million tokens (default: a 2024 hosted list "
    "price for Llama-3.1-70B).",
)
@click.option(
    "--prices-from",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Take both prices from a serve config's small.price and large.price instead.",
)
def outcomes_command(
    mmlu_dir: Path,
    small: str,
    large: str,
    out_path: Path,
    small_price: str,
    large_price: str,
    config_path: Path | None,
) -> None:
    """Build an outcome file from MMLU-Pro: per question, both models' correctness and a cost
    estimate from prompt and output length (4 characters a token) at the given prices."""
    from cascade.mmlu_pro import build_outcomes

    if config_path is not None:
        prices = _config_prices(config_path)
    else:
        prices = (_price(small_price, "--small-price"), _price(large_price, "--large-price"))
    questions, correct, chars = _read_mmlu_pro(mmlu_dir)
    try:
        report = build_outcomes(
            questions,
            correct,
            chars,
            small=small,
            large=large,
            small_price=prices[0],
            large_price=prices[1],
        )
    except ValueError as exc:
        raise click.ClickException(f"{mmlu_dir}: {exc}") from None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("w", encoding="utf-8") as handle:
        for record in report.records:
            handle.write(json.dumps(record) + "\n")
    click.echo(
        f"wrote {len(report.records)} records to {out_path} (skipped: "
        f"{report.skipped_no_result} without a result for both models, "
        f"{report.skipped_no_question} without a question)"
    )
