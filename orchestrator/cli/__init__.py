"""The `spillway` command line.

Each command group lives in its own module and is imported only when it is invoked, so
`spillway --help` stays fast and importing this package starts nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# command name -> (module, attribute, one-line help shown by `spillway --help`)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "serve": ("orchestrator.cli.serve", "serve", "Start the Spillway Serve application."),
    "config": ("orchestrator.cli.config", "config", "Validate serve configs."),
    "models": ("orchestrator.cli.models", "models", "Build the local models and adapters."),
    "router": ("orchestrator.cli.router", "router", "Train, evaluate and query routers."),
    "adapters": (
        "orchestrator.cli.adapters",
        "adapters",
        "Train, evaluate and version LoRA adapters.",
    ),
    "cascade": ("orchestrator.cli.cascade", "cascade", "Evaluate and calibrate the cascade."),
    "ledger": ("orchestrator.cli.ledger", "ledger", "Read and export the cost ledger."),
}


class _LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = _COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module_name, attribute, _ = spec
        command: Any = getattr(importlib.import_module(module_name), attribute)
        return command  # type: ignore[no-any-return]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS[name][2]) for name in sorted(_COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spillway")
def main() -> None:
    """Spillway: one OpenAI-compatible chat endpoint that routes each query to a domain
    adapter on a small model, escalates low-confidence answers to a large model, and
    records what every query cost."""
