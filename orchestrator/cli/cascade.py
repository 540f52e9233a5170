"""`spillway cascade`: evaluate and calibrate the cascade offline, and build outcome files.

The click commands live here; reading and writing their files (and the router artifact) is in
``orchestrator.cli.cascade_io``, every computation in ``cascade``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orchestrator.cli.cascade_apply import apply_options, apply_target, write_thresholds
from orchestrator.cli.cascade_io import (
    DEFAULT_RELATIVE_COSTS,
    columns_for,
    config_prices,
    evaluation_summary,
    load_scored,
    parse_price,
    print_evaluation,
    read_mmlu_pro,
    read_outcome_file,
    read_structured,
)
from orchestrator.cli.cascade_ledger import calibrate_from_ledger, ledger_options, ledger_source

if TYPE_CHECKING:
    from cascade.evaluate import Mode

__all__ = ["DEFAULT_RELATIVE_COSTS", "cascade", "columns_for", "load_scored", "read_outcome_file"]

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
            type=click.Choice(
                ["mean_prob", "geometric_mean", "min_prob", "quantile", "first_k", "learned"]
            ),
            help="Compute the score with this confidence signal from each record's `logprobs`. "
            "With --from-ledger: calibrate rows decided with this signal; `learned` fits the "
            "logistic regression over the signals the ledger recorded (needs feedback on "
            "accepted answers judged right and wrong).",
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


def _mode(mode: str | None, scorer_dir: Path | None) -> Mode:
    chosen = mode or ("route" if scorer_dir is not None else "cascade")
    return "route" if chosen == "route" else "cascade"


_outcomes_option = click.option(
    "--outcomes",
    "outcomes_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=_OUTCOMES_HELP,
)


@click.group()
def cascade() -> None:
    """Evaluate and calibrate the cascade on outcome data, and build outcome files."""


@cascade.command("eval", short_help="APGR, CPT and savings of a score on outcome data.")
@_outcomes_option
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
        result["by_route"] = {name: evaluation_summary(e) for name, e in per_route.items()}
    if thresholds_path is not None:
        try:
            policy = policy_from_file_data(read_structured(thresholds_path))
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise click.ClickException(
                f"{thresholds_path}: not a thresholds file ({exc})"
            ) from None
        decided = escalations(policy, scores, [o.route for o in outcomes], mode=chosen)
        result["thresholds"] = asdict(operating_point(columns, decided, mode=chosen))
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    print_evaluation(f"{outcomes_path} ({len(outcomes)} records)", result)
    for name, summary in result.get("by_route", {}).items():
        print_evaluation(f"route {name or '(none)'}", summary)
    if "thresholds" in result:
        print_evaluation(f"thresholds {thresholds_path}", result["thresholds"])


@cascade.command("calibrate", short_help="Write thresholds that meet a target.")
@click.option(
    "--outcomes",
    "outcomes_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=_OUTCOMES_HELP + " Required unless --from-ledger.",
)
@ledger_options
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
@apply_options
def calibrate_command(
    outcomes_path: Path | None,
    from_ledger: bool,
    config_path: Path | None,
    ledger_url: str | None,
    large_quality: float | None,
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
    apply_url: str | None,
    api_key: str | None,
) -> None:
    """Choose thresholds that meet a target on outcome data and write them to a file the serve
    config can include (its `policy` key is a cascade policy); --apply also puts them in force."""
    from cascade.calibrate import CalibrationError, calibrate, parse_target
    from cascade.outcomes import group_by_route

    try:
        parsed = parse_target(target)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--target") from None
    apply_to = apply_target(apply_url, api_key)
    if from_ledger:
        _refuse_file_options(outcomes_path, score_field, scorer_dir, mode)
        url, base = ledger_source(config_path, ledger_url)
        fitted = calibrate_from_ledger(
            url, parsed, base=base, signal=signal, per_route=per_route,
            min_route_records=min_route_records, large_quality=large_quality,
        )  # fmt: skip
        write_thresholds(out_path, *fitted, as_json, apply_to)
        return
    if outcomes_path is None:
        raise click.UsageError("give --outcomes FILE, or --from-ledger")
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
    source: dict[str, Any] = {"outcomes": str(outcomes_path), "records": len(outcomes)}
    source["score"] = str(scorer_dir or signal or score_field or "score")
    write_thresholds(out_path, result, source, as_json, apply_to)


def _refuse_file_options(
    outcomes_path: Path | None, score_field: str | None, scorer_dir: Path | None, mode: str | None
) -> None:
    """--from-ledger takes its confidences and outcomes from the ledger, not from a file."""
    if outcomes_path or score_field or scorer_dir or mode == "route":
        raise click.UsageError(
            "--from-ledger reads confidences and feedback from the ledger: drop --outcomes, "
            "--score-field, --scorer and --mode route"
        )


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
        prices = config_prices(config_path)
    else:
        prices = (
            parse_price(small_price, "--small-price"),
            parse_price(large_price, "--large-price"),
        )
    questions, correct, chars = read_mmlu_pro(mmlu_dir)
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
