"""The spool keeps rows the database could not take: in a fsync'd JSONL file, or memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.ledger import LedgerRow
from orchestrator.ledger.spool import Spool
from tests.unit.test_ledger_row import make_row


def rows(n: int, prefix: str = "q") -> list[LedgerRow]:
    return [make_row(query_id=f"{prefix}{i}") for i in range(n)]


def drained(spool: Spool, size: int = 1000) -> list[LedgerRow]:
    got: list[LedgerRow] = []
    spool.drain(size, got.extend)
    return got


def test_memory_spool_keeps_rows_in_order() -> None:
    spool = Spool(None)
    spool.append(rows(3))
    spool.append(rows(2, "r"))
    assert len(spool) == 5 and spool.in_memory == 5
    assert [r.query_id for r in drained(spool)] == ["q0", "q1", "q2", "r0", "r1"]
    assert len(spool) == 0


def test_file_spool_survives_a_new_process(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "spool.jsonl"
    first = Spool(path)
    first.append(rows(4))
    assert first.in_memory == 0
    assert len(path.read_text().splitlines()) == 4
    again = Spool(path)  # as after a crash and restart
    assert len(again) == 4
    assert drained(again) == rows(4)
    assert path.read_text() == "" and len(again) == 0


def test_drain_passes_chunks_and_keeps_everything_when_store_fails(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append(rows(5))
    sizes: list[int] = []

    def failing_store(chunk: list[LedgerRow]) -> None:
        sizes.append(len(chunk))
        if len(sizes) == 2:
            raise ConnectionError("database went away")

    with pytest.raises(ConnectionError):
        spool.drain(2, failing_store)
    assert sizes == [2, 2]
    assert len(spool) == 5 and len(Spool(tmp_path / "spool.jsonl")) == 5
    chunks: list[int] = []
    assert spool.drain(2, lambda chunk: chunks.append(len(chunk))) == 5
    assert chunks == [2, 2, 1]


def test_torn_last_line_is_set_aside_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    spool = Spool(path)
    spool.append(rows(2))
    with open(path, "a") as handle:
        handle.write('{"query_id": "torn", "created_at": "2025-')  # crash mid-write
    got = drained(Spool(path))
    assert [r.query_id for r in got] == ["q0", "q1"]
    rejected = (tmp_path / "spool.jsonl.rejected").read_text()
    assert '"torn"' in rejected


def test_unwritable_file_falls_back_to_memory_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    path.mkdir()  # a directory where the file should be: every write fails
    spool = Spool(path)
    spool.append(rows(2))
    assert spool.in_memory == 2 and len(spool) == 2
    path.rmdir()
    spool.append(rows(1, "r"))  # the file works again: held rows move into it
    assert spool.in_memory == 0
    assert len(path.read_text().splitlines()) == 3
    assert [r.query_id for r in drained(spool)] == ["q0", "q1", "r0"]


def test_two_processes_sharing_a_file_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    a, b = Spool(path), Spool(path)
    a.append(rows(2, "a"))
    b.append(rows(3, "b"))
    assert sorted(r.query_id for r in drained(a)) == ["a0", "a1", "b0", "b1", "b2"]
    assert drained(b) == []


def test_take_memory_returns_only_memory_rows() -> None:
    spool = Spool(None)
    spool.append(rows(2))
    assert [r.query_id for r in spool.take_memory()] == ["q0", "q1"]
    assert len(spool) == 0


def test_reject_without_a_file_logs_the_row(caplog: pytest.LogCaptureFixture) -> None:
    assert Spool(None).reject(['{"query_id": "x"}']) is None
    assert '"query_id": "x"' in caplog.text
