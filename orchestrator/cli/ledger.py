"""`spillway ledger`: read, export and migrate the cost ledger.

The database is named by `--db URL` or by a serve config (`--config FILE`, its `ledger.url`);
with neither, `serve_config/local.yaml` in the current directory is used when present.
SQLAlchemy is imported inside the commands, so `spillway --help` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import click

DEFAULT_CONFIG = Path("serve_config/local.yaml")


class IsoDateTime(click.ParamType):
    """An ISO 8601 date or time; without an offset it is taken as UTC."""

    name = "ISO-8601"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            parsed = value
        else:
            try:
                parsed = datetime.fromisoformat(str(value).strip())
            except ValueError:
                self.fail(
                    f"{value!r} is not an ISO 8601 date or time; use e.g. 2025-01-31 or "
                    "2025-01-31T12:00:00Z (UTC unless an offset is given)",
                    param,
                    ctx,
                )
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)


def _database_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Serve config whose ledger.url to use (default: serve_config/local.yaml if present).",
    )(command)
    return click.option(
        "--db",
        "db_url",
        metavar="URL",
        help="Ledger URL: sqlite:///PATH or postgresql+psycopg://...",
    )(command)


def _resolve_url(db_url: str | None, config_path: Path | None) -> str:
    if db_url and config_path:
        raise click.UsageError("pass either --db or --config, not both")
    if db_url:
        return db_url
    if config_path is None:
        if not DEFAULT_CONFIG.is_file():
            raise click.UsageError(
                "name the ledger: --db URL (sqlite:///PATH or postgresql+psycopg://...) or "
                "--config FILE (a serve config)"
            )
        config_path = DEFAULT_CONFIG
    from orchestrator.config import ConfigError, load_config

    try:
        return load_config(config_path).ledger.url
    except ConfigError as error:
        problems = "; ".join(error.problems)
        raise click.BadParameter(f"{error.source}: {problems}", param_hint="'--config'") from None


@contextmanager
def _reader(url: str) -> Iterator[Any]:
    """An engine on an existing ledger; database errors become messages that say what to do."""
    from sqlalchemy import exc

    from orchestrator.ledger.engine import (
        check_ledger_exists,
        make_engine,
        parse_url,
        sqlite_path,
        unavailable_message,
    )
    from orchestrator.ledger.errors import LedgerError

    try:
        parsed = parse_url(url)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--db'") from None
    path = sqlite_path(parsed)
    if path is not None and not path.is_file():
        raise click.ClickException(
            f"no ledger database at {path}; check --db/--config (the service creates the "
            "file on its first start)"
        )
    engine = make_engine(parsed)
    try:
        check_ledger_exists(engine)
        yield engine
    except LedgerError as error:
        raise click.ClickException(str(error)) from None
    except exc.DBAPIError as error:
        raise click.ClickException(unavailable_message(engine, error)) from None
    finally:
        engine.dispose()


@click.group("ledger")
def ledger() -> None:
    """Read, export and migrate the cost ledger."""


@ledger.command("export")
@_database_options
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl", show_default=True
)
@click.option("--since", type=IsoDateTime(), help="Rows created at or after this time (UTC).")
@click.option("--until", type=IsoDateTime(), help="Rows created before this time (UTC).")
@click.option("--tenant", help="Only this tenant's rows.")
@click.option("--out", default="-", show_default=True, help="Output file, or - for stdout.")
def export(
    db_url: str | None,
    config_path: Path | None,
    fmt: str,
    since: datetime | None,
    until: datetime | None,
    tenant: str | None,
    out: str,
) -> None:
    """Write ledger rows, oldest first, as CSV (with a header) or JSONL.

    Money is a fixed-point decimal string with 10 places and times are ISO 8601 UTC, in both
    formats. A file is written whole or not at all (through a temporary file)."""
    if since is not None and until is not None and since >= until:
        raise click.BadParameter("--since must be earlier than --until", param_hint="'--since'")
    from orchestrator.ledger import reader
    from orchestrator.ledger.export import write_csv, write_jsonl

    def write(rows: Iterator[dict[str, Any]], handle: TextIO) -> int:
        return write_csv(rows, handle) if fmt == "csv" else write_jsonl(rows, handle)

    with _reader(_resolve_url(db_url, config_path)) as engine:
        rows = reader.iter_rows(engine, since=since, until=until, tenant=tenant)
        if out == "-":
            count = write(rows, sys.stdout)
        else:
            with _atomic_text_file(Path(out)) as handle:
                count = write(rows, handle)
    where = "stdout" if out == "-" else out
    click.echo(f"exported {count} rows to {where}", err=True)


@contextmanager
def _atomic_text_file(path: Path) -> Iterator[TextIO]:
    if not path.parent.is_dir():
        raise click.BadParameter(f"directory {path.parent} does not exist", param_hint="'--out'")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@ledger.command("show")
@click.argument("query_id")
@_database_options
@click.option("--json", "as_json", is_flag=True, help="Print the row as one JSON object.")
def show(query_id: str, db_url: str | None, config_path: Path | None, as_json: bool) -> None:
    """Print the ledger row of QUERY_ID (exit status 1 when there is none)."""
    from orchestrator.ledger import reader
    from orchestrator.ledger.export import jsonable_row

    url = _resolve_url(db_url, config_path)
    with _reader(url) as engine:
        row = reader.fetch_row(engine, query_id)
    if row is None:
        click.echo(
            f"no ledger row for query {query_id!r}; check the id and --db/--config", err=True
        )
        sys.exit(1)
    data = jsonable_row(row)
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
        return
    width = max(len(name) for name in data)
    for name, value in data.items():
        click.echo(f"{name:<{width}}  {'' if value is None else value}")


@ledger.command("migrate")
@_database_options
@click.option("--json", "as_json", is_flag=True, help="Print the revision as JSON.")
def migrate(db_url: str | None, config_path: Path | None, as_json: bool) -> None:
    """Create the ledger schema, or upgrade it to the newest revision (safe to repeat)."""
    from orchestrator.ledger.engine import (
        current_revision,
        describe,
        make_engine,
        parse_url,
        prepare_sqlite_file,
    )
    from orchestrator.ledger.engine import migrate as run_migrations
    from orchestrator.ledger.errors import LedgerError

    try:
        parsed = parse_url(_resolve_url(db_url, config_path))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--db'") from None
    prepare_sqlite_file(parsed)
    engine = make_engine(parsed)
    try:
        run_migrations(engine)
        revision = current_revision(engine)
    except LedgerError as error:
        raise click.ClickException(str(error)) from None
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps({"url": describe(parsed), "revision": revision}))
    else:
        click.echo(f"ledger at {describe(parsed)} is at revision {revision}")
