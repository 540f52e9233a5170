"""`spillway adapters train|eval` (over `adapter_training`) and, from adapters_registry.py,
`list|add|remove|promote|rollback`. Heavy modules are imported inside the commands."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from orchestrator.cli.adapters_registry import REGISTRY_COMMANDS

VALIDATION_FRACTION = 0.1
MIN_EXAMPLES_TO_SPLIT = 10


@click.group()
def adapters() -> None:
    """Train and evaluate LoRA adapters for the small model, and manage the versions a
    running service serves (name@N) without restarting it."""


for _command in REGISTRY_COMMANDS:
    adapters.add_command(_command)


def _examples(path: Path) -> list[Any]:
    from adapter_training.data import DataError, load_examples

    try:
        return load_examples(path)
    except DataError as error:
        raise click.ClickException(str(error)) from None


def _check_base(path: Path) -> None:
    if not (path / "config.json").is_file():
        raise click.BadParameter(
            f"{path} has no config.json; pass a local Hugging Face model directory "
            "(e.g. .spillway/models/small after `spillway models build`)",
            param_hint="--base-model",
        )


def _split(train: list[Any], val_path: Path | None) -> tuple[list[Any], list[Any]]:
    """(train, validation): --val as given, else a hashed tenth of --data."""
    if val_path is not None:
        return train, _examples(val_path)
    if len(train) < MIN_EXAMPLES_TO_SPLIT:
        raise click.ClickException(
            f"--data has {len(train)} examples: too few to hold out validation examples; "
            f"give at least {MIN_EXAMPLES_TO_SPLIT} or pass --val FILE"
        )
    from adapter_training.data import split_examples

    return split_examples(train, VALIDATION_FRACTION, salt="validation")


def _track(uri: str | None, stage: str, adapter: Path, record: dict[str, Any]) -> None:
    """With --mlflow, log the run; a tracking failure is reported, the adapter is kept."""
    if not uri:
        return
    from adapter_training.tracking import log_to_mlflow

    try:
        run_id = log_to_mlflow(uri, stage, adapter, record)
    except Exception as error:  # MLflow raises many types; the trained adapter is still good
        click.echo(f"MLflow logging failed: {error}", err=True)
        return
    click.echo(f"MLflow run {run_id}", err=True)


def _summary(card: dict[str, Any]) -> str:
    held, gate = card["heldout"], card["gate"]
    return (
        f"trained {card['steps']} steps (best {card['best_step']}) in {card['seconds']} s, "
        f"{card['tokens_per_second']} tokens/s\n"
        f"validation loss: base {held['base_loss']:.4f}, adapter {held['adapter_loss']:.4f}\n"
        f"gate: {gate['reason']}"
    )


@adapters.command()
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Training JSONL.")
@click.option(
    "--base-model", required=True, type=click.Path(path_type=Path), help="Local HF model dir."
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Adapter directory.")
@click.option("--val", type=click.Path(path_type=Path), help="Validation JSONL (default: 10%).")
@click.option("--rank", default=8, show_default=True, help="LoRA rank r.")
@click.option("--alpha", default=16, show_default=True, help="LoRA alpha (scale = alpha/r).")
@click.option(
    "--target-modules",
    default="q_proj,k_proj,v_proj,o_proj",
    show_default=True,
    help="Comma-separated module names to adapt.",
)
@click.option("--epochs", default=3, show_default=True, help="Maximum epochs (early stopping).")
@click.option("--learning-rate", default=1e-3, show_default=True, help="AdamW peak rate.")
@click.option("--batch-size", default=4, show_default=True, help="Examples per step.")
@click.option("--max-length", default=256, show_default=True, help="Tokens kept per example.")
@click.option("--max-steps", default=0, show_default=True, help="Stop after N steps (0: none).")
@click.option("--patience", default=1, show_default=True, help="Evaluations without gain.")
@click.option("--seed", default=0, show_default=True, help="Random seed (repeatable runs).")
@click.option("--threads", default=2, show_default=True, help="Torch CPU threads.")
@click.option("--margin", default=0.02, show_default=True, help="Gate: loss lower by this.")
@click.option("--mlflow", "mlflow_uri", help="Log the run to MLflow (URI or directory).")
@click.option("--force", is_flag=True, help="Overwrite an adapter already in --out.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the model card as JSON.")
def train(**options: Any) -> None:
    """Train a PEFT LoRA adapter on chat JSONL (OpenAI fine-tuning `messages`) or
    prompt/completion pairs: loss on the answer tokens only, early stopping on the validation
    loss, deterministic for a seed. Writes the adapter and card.json (data and base-model
    hashes, hyper-parameters, validation loss against the base model's, the gate verdict)."""
    out: Path = options["out"]
    if (out / "adapter_model.safetensors").exists() and not options["force"]:
        raise click.BadParameter(
            f"{out} already holds an adapter; pass --force", param_hint="--out"
        )
    _check_base(options["base_model"])
    train_set, val_set = _split(_examples(options["data"]), options["val"])
    card = _train(options, train_set, val_set)
    _track(options["mlflow_uri"], "train", out, card)
    click.echo(json.dumps(card, indent=2) if options["as_json"] else _summary(card))


def _train(options: dict[str, Any], train_set: list[Any], val_set: list[Any]) -> dict[str, Any]:
    from adapter_training.gate import gate_verdict
    from adapter_training.reproduce import RECIPE
    from adapter_training.train import CARD_FILE, train_adapter

    modules = tuple(m.strip() for m in options["target_modules"].split(",") if m.strip())
    settings = replace(
        RECIPE,
        rank=options["rank"],
        alpha=options["alpha"],
        target_modules=modules,
        epochs=options["epochs"],
        learning_rate=options["learning_rate"],
        batch_size=options["batch_size"],
        max_length=options["max_length"],
        max_steps=options["max_steps"],
        patience=options["patience"],
        seed=options["seed"],
        threads=options["threads"],
    )
    files = [options["data"], *([options["val"]] if options["val"] else [])]
    card = train_adapter(
        options["base_model"],
        train_set,
        val_set,
        options["out"],
        settings=settings,
        data_files=files,
        progress=not options["quiet"],
    )
    held = card["heldout"]
    verdict = gate_verdict(held["base_loss"], held["adapter_loss"], margin=options["margin"])
    card["base_model_path"] = str(Path(options["base_model"]).resolve())
    card["gate"] = verdict.as_dict()
    path = Path(options["out"]) / CARD_FILE
    path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card


def _base_of(adapter: Path, given: Path | None) -> Path:
    """--base-model, else the base-model path the adapter's card recorded."""
    if given is not None:
        return given
    card = adapter / "card.json"
    if card.is_file():
        recorded = json.loads(card.read_text(encoding="utf-8")).get("base_model_path")
        if recorded:
            return Path(recorded)
    raise click.BadParameter(
        f"{adapter}/card.json records no base model path; pass --base-model DIR",
        param_hint="--base-model",
    )


@adapters.command(name="eval")
@click.option("--adapter", required=True, type=click.Path(path_type=Path), help="Adapter dir.")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Held-out JSONL.")
@click.option(
    "--base-model", type=click.Path(path_type=Path), help="Base model dir (default: the card's)."
)
@click.option("--margin", default=0.02, show_default=True, help="Gate: loss lower by this.")
@click.option("--em-max-chars", default=80, show_default=True, help="Longest EM answer.")
@click.option("--threads", default=2, show_default=True, help="Torch CPU threads.")
@click.option("--mlflow", "mlflow_uri", help="Log the scores to MLflow (URI or directory).")
@click.option("--json", "as_json", is_flag=True, help="Print every score as JSON.")
def evaluate(**options: Any) -> None:
    """The adapter against its base model on held-out data: answer-token loss, perplexity,
    exact match (on single-turn examples with short answers) and the gate verdict. Exits 1
    when the adapter fails the gate, so scripts can stop a rollout."""
    adapter: Path = options["adapter"]
    if not (adapter / "adapter_config.json").is_file():
        raise click.BadParameter(f"{adapter} is not a PEFT adapter dir", param_hint="--adapter")
    base = _base_of(adapter, options["base_model"])
    _check_base(base)
    examples = _examples(options["data"])
    from adapter_training.compare import evaluate_adapter

    result = evaluate_adapter(
        base,
        adapter,
        examples,
        margin=options["margin"],
        em_max_chars=options["em_max_chars"],
        threads=options["threads"],
    )
    _track(options["mlflow_uri"], "eval", adapter, result)
    click.echo(json.dumps(result, indent=2) if options["as_json"] else _eval_text(result))
    if not result["gate"]["passed"]:
        raise SystemExit(1)


def _eval_text(result: dict[str, Any]) -> str:
    lines = [f"{result['examples']} examples ({result['exact_match_examples']} for exact match)"]
    for who in ("base", "adapter"):
        scores = result[who]
        line = f"{who:8s} loss {scores['loss']:.4f}  perplexity {scores['perplexity']:.2f}"
        if "exact_match" in scores:
            line += f"  exact match {scores['exact_match']:.3f}"
        lines.append(line)
    lines.append(f"gate: {result['gate']['reason']}")
    return "\n".join(lines)
