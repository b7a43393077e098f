"""SQLite WAL checkpoints run in the store's background thread, not inside commits."""

from __future__ import annotations

import time

from sqlalchemy import text

from pipeline.store import Store
from pipeline.store.walcheckpoint import Checkpointer
from tests.store.helpers import score


def test_commits_leave_checkpoints_to_the_background_thread(tmp_path, clock):
    path = tmp_path / "churn.db"
    store = Store(f"sqlite:///{path}", clock=clock)
    with store.engine.connect() as conn:  # the write connections never checkpoint inline
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 0
    store._checkpointer.close()
    store._checkpointer = Checkpointer(path, pages=16)  # ~64 KiB: every batch triggers one
    for k in range(5):
        store.upsert_scores([score(f"u{i}", i / 2000, k) for i in range(2000)])
    deadline = time.monotonic() + 10
    while store._checkpointer.checkpoints == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store._checkpointer.checkpoints >= 1
    store.close()
    assert not (tmp_path / "churn.db-wal").exists()  # the last close checkpointed the rest
    again = Store(f"sqlite:///{path}", clock=clock)
    assert len(again.current_scores(top_k=None)) == 2000 and len(again.score_history()) == 2000
    again.close()


def test_past_the_hard_limit_the_writer_checkpoints_itself(tmp_path, clock):
    path = tmp_path / "churn.db"
    store = Store(f"sqlite:///{path}", clock=clock)
    store._checkpointer.close()
    stuck = Checkpointer(path, pages=10**9, hard_limit=16)  # the thread never asked to run
    store._checkpointer = stuck
    store.upsert_scores([score(f"u{i}", 0.5) for i in range(3000)])
    assert stuck.checkpoints == 1  # inline, by the committing writer
    store.close()


def test_new_files_get_large_pages_and_sync_fsyncs_the_wal(tmp_path, clock, monkeypatch):
    import os

    from pipeline.store.engine import PAGE_SIZE

    store = Store(f"sqlite:///{tmp_path / 'churn.db'}", clock=clock)
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA page_size")).scalar() == PAGE_SIZE == 65536
    store.upsert_scores([score("u1", 0.5)])
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    store.sync()
    assert synced == [str(tmp_path / "churn.db-wal")]
    store.close()
    memory = Store("sqlite://", clock=clock)
    memory.sync()  # nothing to make durable: no error, no file
    memory.close()
