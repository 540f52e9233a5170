"""No answered query without its row, even under SIGKILL: a process records rows through a
journaled SQLite ledger and reports each one whose future completed (the moment the ingress
would send the answer); it is SIGKILLed mid-stream; a new ledger on the same journal adopts
the dead one's segments. Every acknowledged row is then in the database, once.

Also, in process: the ingress app answers only after the row is journaled, and a refused
request's row records the model it asked for."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from orchestrator.config import validate_config_dict
from orchestrator.ledger import Ledger
from tests.fakes import CONFIG, FakeModels, in_process_app

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from orchestrator.ledger import Ledger
    from tests.unit.test_ledger_row import make_row

    url, journal, flush_s = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
    ledger = Ledger(url, journal_dir=journal, flush_interval_s=flush_s)
    ledger.start()
    number = 0
    while True:
        futures = [ledger.record(make_row(query_id=f"q{number + i}")) for i in range(8)]
        for i, future in enumerate(futures):
            future.result()
            print(f"q{number + i}", flush=True)  # acknowledged: the answer may leave now
        number += 8
    """
)


def ledger_ids(db: Path) -> list[str]:
    with sqlite3.connect(db) as connection:
        return [row[0] for row in connection.execute("SELECT query_id FROM ledger")]


@pytest.mark.parametrize("flush_s", [30.0, 0.05], ids=["nothing-written-yet", "some-written"])
def test_sigkill_loses_no_acknowledged_row(tmp_path: Path, flush_s: float) -> None:
    db, journal = tmp_path / "ledger.db", tmp_path / "journal"
    url = f"sqlite:///{db}"
    Ledger(url).__enter__().close()  # the schema, so the killed writer starts at once
    env = os.environ | {"PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(journal), str(flush_s)],
        stdout=subprocess.PIPE,
        env=env,
        cwd=REPO,
        text=True,
    )
    assert proc.stdout is not None
    acknowledged = [proc.stdout.readline().strip() for _ in range(300)]
    os.kill(proc.pid, signal.SIGKILL)
    acknowledged += [line.strip() for line in proc.stdout if line.strip()]  # sent before death
    proc.wait(timeout=10)
    before = set(ledger_ids(db))
    if flush_s > 1:
        assert not before  # the rows were only in the journal when the process died
    with Ledger(url, journal_dir=journal) as ledger:
        assert ledger.journal_stats is not None and ledger.journal_stats.rows_recovered >= 300
        assert ledger.flush(30)
    stored = ledger_ids(db)
    assert set(acknowledged) <= set(stored), len(set(acknowledged) - set(stored))
    assert len(stored) == len(set(stored))  # replay added no duplicate
    assert list(journal.glob("*.jsonl")) == []  # all saved: no segment left


def _journaled_app(tmp_path: Path) -> Any:
    data = json.loads(json.dumps(CONFIG))
    data["ledger"] = {"url": f"sqlite:///{tmp_path / 'ledger.db'}"}
    config = validate_config_dict(data)
    models = FakeModels(0.95, {"label": "legal", "probability": 0.8, "abstained": False})
    return in_process_app(config, models, journal_dir=tmp_path / "journal")


def test_answers_and_refusals_are_journaled_with_what_was_asked(tmp_path: Path) -> None:
    key = {"Authorization": "Bearer k"}
    with _journaled_app(tmp_path) as (client, ledger):
        answered = client.post(
            "/v1/chat/completions",
            json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
            headers=key,
        )
        refused = client.post(
            "/v1/chat/completions", json={"model": "auto", "messages": []}, headers=key
        )
        streamed_refusal = client.post(
            "/v1/chat/completions",
            json={"model": "legal", "stream": True, "messages": [], "top_p": 5},
            headers=key,
        )
        assert answered.status_code == 200 and refused.status_code == 400
        assert streamed_refusal.status_code == 400
        stats = ledger.journal_stats
        assert stats is not None and stats.rows_journaled == 3
        rows = {
            response.headers["x-spillway-query-id"]: client.get(
                f"/v1/queries/{response.headers['x-spillway-query-id']}", headers=key
            ).json()
            for response in (answered, refused, streamed_refusal)
        }
    by_status = {(r["http_status"], r["model_requested"], r["stream"]) for r in rows.values()}
    assert by_status == {(200, "auto", False), (400, "auto", False), (400, "legal", True)}
