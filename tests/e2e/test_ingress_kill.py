"""A SIGKILLed ingress replica loses no answered query's row (issue 17).

`spillway serve` (instant models, a journaled SQLite ledger) under load from three client
threads; the Ingress replica's process is SIGKILLed; Serve starts a new one, which adopts the
dead replica's journal; the load goes on until the new replica has answered. After a clean
stop: every answered query has its row, no row is stored twice, a row without an answer
belongs to a request cut off by the kill, and the journal directory is empty.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bench import instant_backend
from bench.load_service import instant_models
from tests.e2e.conftest import free_port, private_state, start_service, stop_service
from tests.e2e.faultload import Load, replica_pid

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def backend_url() -> Iterator[str]:
    with instant_backend.running(free_port()) as url:
        yield url


def test_sigkilled_ingress_loses_no_answered_row(
    router_built: None, backend_url: str, tmp_path: Path
) -> None:
    overrides = instant_models(backend_url) | private_state(tmp_path)
    service, proc = start_service(tmp_path, overrides)
    try:
        victim = replica_pid(proc.pid, "Ingress")
        with Load(service.base_url, service.api_key, workers=3) as load:
            load.wait_for("answered", 30, 120)
            os.kill(victim, signal.SIGKILL)
            load.phase = "after"
            load.wait_for("answered", load.count() + 30, 240)  # the new replica answers
    finally:
        code = stop_service(proc)
    assert code == 0, service.log_path.read_text()[-3000:]
    assert load.by_phase().get("after:answered", 0) >= 30
    answered = {o.query_id for o in load.outcomes if o.kind == "answered" and o.query_id}
    with sqlite3.connect(service.ledger_path) as connection:
        ids = [r[0] for r in connection.execute("SELECT query_id FROM ledger")]
    print("outcomes:", load.by_phase(), "rows:", len(ids))
    assert len(ids) == len(set(ids))
    assert answered <= set(ids), f"{len(answered - set(ids))} answered queries have no row"
    finished = load.query_ids()  # answered or a clean error: each has its row too
    assert finished <= set(ids)
    assert len(set(ids) - finished) <= load.count("broken"), load.summary()
    state = Path(yaml.safe_load(service.config_path.read_text())["server"]["state_dir"])
    leftover = [p for d in state.glob("journal-*") for p in d.glob("*.jsonl")]
    assert leftover == []
    # the new replica replayed the dead one's journal (its rows already stored were skipped)
    assert "ledger journal: recovered" in service.log_path.read_text(errors="replace")
