"""The journal makes each row durable before its future completes, shares one fdatasync among
the rows waiting together, deletes a segment once its rows are saved, and adopts the segments
a dead process left (never those a live one holds)."""

from __future__ import annotations

import fcntl
import os
import threading
from concurrent.futures import wait
from pathlib import Path

import pytest

from orchestrator.ledger import LedgerRow
from orchestrator.ledger.journal import Journal
from tests.unit.test_ledger_row import make_row


def rows(n: int, prefix: str = "q") -> list[LedgerRow]:
    return [make_row(query_id=f"{prefix}{i}") for i in range(n)]


def on_disk(directory: Path) -> list[str]:
    """Query ids in every segment file of `directory`."""
    ids = []
    for path in sorted(directory.glob("*.jsonl")):
        ids += [LedgerRow.model_validate_json(line).query_id for line in path.read_text().split()]
    return ids


def test_a_row_is_on_disk_before_it_is_passed_on(tmp_path: Path) -> None:
    seen_on_disk: list[bool] = []
    journal = Journal(tmp_path)
    journal.start(then=lambda row: seen_on_disk.append(row.query_id in on_disk(tmp_path)))
    journal.append(make_row(query_id="a")).result(timeout=5)
    assert seen_on_disk == [True]
    assert on_disk(tmp_path) == ["a"]
    journal.close()


def test_concurrent_rows_share_syncs(tmp_path: Path) -> None:
    passed: list[str] = []
    journal = Journal(tmp_path)
    journal.start(then=lambda row: passed.append(row.query_id))
    futures = []

    def send(prefix: str) -> None:
        futures.extend(journal.append(row) for row in rows(200, prefix))

    threads = [threading.Thread(target=send, args=(f"t{t}-",)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _, not_done = wait(futures, timeout=30)
    assert not not_done
    stats = journal.stats()
    assert stats.rows_journaled == 800 and sorted(passed) == sorted(on_disk(tmp_path))
    assert stats.syncs < 800  # group commit: far fewer syncs than rows
    journal.close()


def test_released_segments_are_deleted_and_kept_ones_survive_close(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_rows=3)
    journal.start(then=lambda row: None)
    first, second = rows(3, "a"), rows(3, "b")
    for batch in (first, second):
        wait([journal.append(row) for row in batch], timeout=5)
    journal.release(first)  # first segment is full and no longer current: deleted
    assert sorted(on_disk(tmp_path)) == sorted(r.query_id for r in second)
    journal.close()  # the second holds unsaved rows: kept for the next start
    assert sorted(on_disk(tmp_path)) == sorted(r.query_id for r in second)


def test_all_released_leaves_no_file(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.start(then=lambda row: None)
    batch = rows(5)
    wait([journal.append(row) for row in batch], timeout=5)
    journal.release(batch)
    journal.close()
    assert list(tmp_path.glob("*.jsonl")) == []


def test_a_dead_owners_segment_is_adopted_once(tmp_path: Path) -> None:
    dead = tmp_path / "123-deadbeef-000000.jsonl"
    lines = [row.model_dump_json() for row in rows(3, "old")]
    dead.write_text("\n".join(lines) + "\n" + lines[0][:40])  # a torn last line
    adopted: list[str] = []
    journal = Journal(tmp_path)
    assert journal.start(then=lambda row: adopted.append(row.query_id)) == 3
    assert adopted == ["old0", "old1", "old2"]
    assert not dead.exists()
    assert sorted(on_disk(tmp_path)) == adopted  # now in the adopter's own segment
    again: list[str] = []
    other = Journal(tmp_path)
    assert other.start(then=lambda row: again.append(row.query_id)) == 0
    assert again == []  # the adopter is alive and holds them
    other.close()
    journal.close()


def test_a_live_owners_segment_is_left_alone(tmp_path: Path) -> None:
    live = tmp_path / "456-cafecafe-000000.jsonl"
    live.write_text(make_row(query_id="live").model_dump_json() + "\n")
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as its (running) owner holds it
    try:
        adopted: list[str] = []
        journal = Journal(tmp_path)
        assert journal.start(then=lambda row: adopted.append(row.query_id)) == 0
        assert adopted == [] and live.exists()
        journal.close()
    finally:
        os.close(fd)


def test_append_after_close_is_refused(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.start(then=lambda row: None)
    journal.close()
    with pytest.raises(RuntimeError, match="closed"):
        journal.append(make_row())
