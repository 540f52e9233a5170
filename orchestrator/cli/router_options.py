"""The options of `spillway router train` that need more than a line: which settings the user
gave, the time budget, the thread default, and the `--from-ledger` options and run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

__all__ = [
    "busy_cores_now",
    "cores_left",
    "from_ledger_options",
    "given_options",
    "idle_cores",
    "run_from_ledger",
    "seconds_of",
]


#: `router train` options that are TrainConfig fields (the CLI name's underscores).
_CONFIG_OPTIONS = (
    "base_model",
    "teacher",
    "max_length",
    "keep_layers",
    "runtime",
    "onnx_optimization",
    "ensemble_member",
    "ensemble_weight",
    "ensemble_gate",
    "learning_rate",
    "out_of_scope_label",
    "abstain_target",
    "threads",
    "time_budget",
    "oos_distance_rate",
    "fine_label_field",
)


def given_options(ctx: click.Context, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The TrainConfig settings the user gave on the command line. Defaults are left to
    TrainConfig (they are the same) so that --kind auto can tell a setting the user chose
    from one its candidates choose themselves (e.g. the ensemble's --max-length 32)."""
    options: dict[str, Any] = {}
    for name in _CONFIG_OPTIONS:
        if ctx.get_parameter_source(name) is click.core.ParameterSource.DEFAULT:
            continue
        value = kwargs[name]
        if value is None:
            continue
        if name in ("out_of_scope_label", "fine_label_field") and value == "none":
            value = None
        options["time_budget_s" if name == "time_budget" else name] = value
    return options


def idle_cores() -> int:
    """CPU cores this process may run on that other work is not using now (at least 1).

    Training threads beyond the idle cores cost far more than they give: OpenMP threads spin
    while a busy core is taken (one MiniLM step took ~10x longer with 2 threads than with 1
    beside another busy process). A core counts as taken only when both the one-minute load
    average and a one-second sample of /proc/stat say so: the load average alone lags (right
    after a test run or a previous training it still reads ~1.5 on an idle machine, which
    gave a 10-minute job 1 thread of 2), and a one-second sample alone can land on a blip."""
    import os

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cores_left(usable or 1, os.getloadavg()[0], busy_cores_now())


def cores_left(usable: int, load_average: float, busy_now: float | None) -> int:
    """``usable`` less the cores other work takes (the smaller of the two measures), at least 1."""
    taken = load_average if busy_now is None else min(load_average, busy_now)
    return max(1, usable - round(taken))


def busy_cores_now(seconds: float = 1.0) -> float | None:
    """Cores busy over the next ``seconds`` (from /proc/stat), or None where it cannot be read."""
    import os
    import time

    first = _cpu_times()
    if first is None:
        return None
    time.sleep(seconds)
    second = _cpu_times()
    if second is None:
        return None
    total = sum(second) - sum(first)
    idle = (second[3] + second[4]) - (first[3] + first[4])  # idle + iowait
    if total <= 0:
        return None
    return (1.0 - idle / total) * (os.cpu_count() or 1)


def _cpu_times() -> list[int] | None:
    """The aggregate ``cpu`` line of /proc/stat: user nice system idle iowait irq softirq..."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if len(fields) < 6 or fields[0] != "cpu":
        return None
    return [int(value) for value in fields[1:9]]


def seconds_of(value: str) -> float:
    """'600', '600s' or '10m' in seconds."""
    text = value.strip().lower()
    scale = 60.0 if text.endswith("m") else 1.0
    try:
        seconds = float(text.rstrip("ms")) * scale
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: use seconds ('600', '600s') or minutes ('10m')"
        ) from None
    if seconds <= 0:
        raise click.BadParameter(f"{value!r}: the budget must be positive")
    return seconds


def from_ledger_options(command: Any) -> Any:
    """The options of `router train --from-ledger`."""
    options = [
        click.option(
            "--from-ledger",
            is_flag=True,
            help="Train on the ledger (plus --data, if given): queries whose feedback "
            "corrected the route (POST /v1/feedback with 'route') get that label, other "
            "queries the serving "
            "router labelled at --confident-at or above keep its label. Needs query text "
            "(tenants[].keep_query_text). The new router is written to --out only if it beats "
            "the serving one on 20% of the rows held out from training.",
        ),
        click.option(
            "--config",
            "config_path",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="With --from-ledger: the serve config (its ledger and its router artifact).",
        ),
        click.option(
            "--ledger-url",
            metavar="URL",
            help="With --from-ledger: the ledger database, sqlite:///PATH or postgresql+psycopg://",
        ),
        click.option(
            "--serving",
            type=click.Path(path_type=Path),
            help="With --from-ledger: the serving router artifact to beat (default: the "
            "config's router.artifact).",
        ),
        click.option(
            "--confident-at",
            type=click.FloatRange(0.0, 1.0),
            default=0.9,
            show_default=True,
            help="With --from-ledger: the router probability from which an uncorrected row's "
            "label is trusted for training.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _ledger_and_serving(kwargs: dict[str, Any]) -> tuple[str, Path]:
    config_path, url, serving = kwargs["config_path"], kwargs["ledger_url"], kwargs["serving"]
    if (config_path is None) == (url is None):
        raise click.UsageError("--from-ledger needs exactly one of --config FILE and --ledger-url")
    if config_path is not None:
        from orchestrator.cli.config import load_or_exit

        config = load_or_exit(str(config_path))
        url = config.ledger.resolved_url()
        serving = serving or Path(config.router.artifact)
    if serving is None:
        raise click.UsageError("--from-ledger with --ledger-url needs --serving DIR")
    return str(url), Path(serving)


def run_from_ledger(kwargs: dict[str, Any], options: dict[str, Any]) -> None:
    """`router train --from-ledger` (or a missing --data, which is an error)."""
    if not kwargs["from_ledger"]:
        raise click.UsageError("give --data FILE (labelled queries) or --from-ledger")
    from orchestrator.cli.router_apply import apply_router, apply_target, echo_applied
    from orchestrator.cli.router_ledger import train_from_ledger
    from router_training.artifact import ArtifactError
    from router_training.data import DataError

    target = apply_target(kwargs["apply_url"], kwargs["api_key"])  # before any training
    url, serving = _ledger_and_serving(kwargs)
    try:
        report = train_from_ledger(
            url,
            serving,
            kwargs["out"],
            confident_at=kwargs["confident_at"],
            extra=kwargs["data"],
            seed=kwargs["seed"],
            progress=not kwargs["no_progress"],
            options=options,
        )
    except (DataError, ArtifactError, FileExistsError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    if target is not None and report["replaced"]:
        report["applied"] = apply_router(target, Path(kwargs["out"]))
    if kwargs["as_json"]:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    click.echo(f"ledger rows: {report['ledger_rows']}; trained on {report['rows_by_group']}")
    for name in ("serving", "candidate"):
        scores = report[name]
        cells = ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if isinstance(v, float))
        click.echo(f"  {name:9s} {cells}")
    click.echo(report["reason"])
    if not report["replaced"]:
        if target is not None:
            click.echo(f"nothing applied: {target.url} keeps its router")
        return
    click.echo(f"new router {report['candidate_version']} -> {kwargs['out']}")
    if target is not None:
        echo_applied(target, report["applied"], as_json=False)
    else:
        click.echo(
            f"put it in service with `spillway router apply {kwargs['out']} --url URL` "
            "(docs/router.md, 'Putting a new router in service')"
        )
