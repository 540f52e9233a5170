"""`spillway ledger export|show|migrate` against real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from orchestrator.cli import main
from orchestrator.ledger import FIELDS, Ledger
from orchestrator.ledger.engine import head_revision
from orchestrator.ledger.export import jsonable_row
from tests.postgres import database_url, free_port
from tests.unit.test_ledger_row import T0, make_row

__all__ = ["database_url"]  # fixture used by this module

REPO = Path(__file__).resolve().parents[2]


def seed(url: str) -> list[dict[str, object]]:
    rows = [
        make_row(
            query_id=f"q{i}",
            created_at=T0 + timedelta(hours=i),
            tenant=("acme", "globex")[i % 2],
            cost_usd=Decimal(i) / Decimal(10**9),
        )
        for i in range(6)
    ]
    with Ledger(url) as ledger:
        for row in rows:
            ledger.record(row)
    return [row.model_dump() for row in rows]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_export_csv_to_a_file(database_url: str, tmp_path: Path) -> None:
    rows = seed(database_url)
    out = tmp_path / "ledger.csv"
    code, _, err = run(
        "ledger", "export", "--db", database_url, "--format", "csv", "--out", str(out)
    )
    assert code == 0, err
    assert "exported 6 rows" in err
    parsed = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(parsed[0]) == list(FIELDS)
    assert [r["query_id"] for r in parsed] == [f"q{i}" for i in range(6)]
    assert parsed[3]["cost_usd"] == "0.0000000030"
    assert parsed[3]["created_at"] == jsonable_row(rows[3])["created_at"]
    assert not list(tmp_path.glob(".ledger.csv.*"))  # no temporary file left behind


def test_export_jsonl_with_filters_to_stdout(database_url: str) -> None:
    rows = seed(database_url)
    since = (T0 + timedelta(hours=1)).isoformat()
    until = (T0 + timedelta(hours=5)).isoformat()
    code, out, err = run(
        "ledger", "export", "--db", database_url, "--format", "jsonl",
        "--since", since, "--until", until, "--tenant", "globex",
    )  # fmt: skip
    assert code == 0, err
    got = [json.loads(line) for line in out.splitlines()]
    assert got == [jsonable_row(rows[1]), jsonable_row(rows[3])]  # q5 is at `until`: excluded


def test_export_with_a_serve_config(database_url: str, tmp_path: Path) -> None:
    seed(database_url)
    config = yaml.safe_load((REPO / "serve_config" / "local.yaml").read_text())
    config["ledger"] = {"url": database_url}
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    code, out, err = run("ledger", "export", "--config", str(path), "--format", "jsonl")
    assert code == 0, err
    assert len(out.splitlines()) == 6


def test_show(database_url: str) -> None:
    rows = seed(database_url)
    code, out, _ = run("ledger", "show", "q2", "--db", database_url, "--json")
    assert code == 0 and json.loads(out) == jsonable_row(rows[2])
    code, out, _ = run("ledger", "show", "q2", "--db", database_url)
    assert code == 0 and "tenant" in out and "acme" in out
    code, _, err = run("ledger", "show", "nope", "--db", database_url)
    assert code == 1 and "no ledger row for query 'nope'" in err


def test_migrate_is_repeatable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'ledger.db'}"
    for _ in range(2):
        code, out, err = run("ledger", "migrate", "--db", url, "--json")
        assert code == 0, err
        assert json.loads(out)["revision"] == head_revision()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "last tuesday"], "Invalid value for '--since'"),
        (["--until", "2025-13-01"], "Invalid value for '--until'"),
        (["--since", "2025-02-01", "--until", "2025-01-01"], "--since must be earlier"),
        (["--format", "xml"], "Invalid value for '--format'"),
    ],
)
def test_bad_options_are_named(tmp_path: Path, args: list[str], message: str) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    code, _, err = run("ledger", "export", "--db", url, *args)
    assert code == 2 and message in err


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/x", "cannot reach the ledger"),
        ("sqlite:////nonexistent/dir/ledger.db", "no ledger database at /nonexistent"),
        ("mysql://db/x", "unsupported database"),
        ("not a url", "is not a database URL"),
    ],
)
def test_database_problems_say_what_to_do(url: str, message: str) -> None:
    code, _, err = run("ledger", "export", "--db", url)
    assert code != 0 and message in err


def test_a_database_without_a_ledger(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    code, _, err = run("ledger", "export", "--db", f"sqlite:///{path}")
    assert code == 1 and "has no ledger table" in err and "spillway ledger migrate" in err


def test_no_database_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no serve_config/local.yaml here
    code, _, err = run("ledger", "export")
    assert code == 2 and "--db URL" in err and "--config FILE" in err
