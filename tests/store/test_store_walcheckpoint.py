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


def test_after_a_checkpoint_the_wal_shrinks_so_commits_stop_checkpointing_inline(tmp_path, clock):
    import os

    from pipeline.store.walcheckpoint import WAL_KEEP_BYTES

    path = tmp_path / "churn.db"
    store = Store(f"sqlite:///{path}", clock=clock)
    wal = tmp_path / "churn.db-wal"
    store._checkpointer.close()
    stuck = Checkpointer(path, pages=10**9, hard_limit=10**9)  # nothing checkpoints yet
    store._checkpointer = stuck
    rows = [score(f"user-{i:06d}-{'x' * 100}", 0.5) for i in range(20_000)]
    for k in range(6):  # well past the keep size (every row rewritten each time)
        store.upsert_scores([{**r, "risk": k / 10} for r in rows], history=None)
    assert os.stat(wal).st_size > 2 * WAL_KEEP_BYTES
    store._checkpointer = Checkpointer(path, pages=10**9, hard_limit=WAL_KEEP_BYTES * 2 // 4096)
    store.upsert_scores([score("u1", 0.5)])  # past the hard limit: inline checkpoint
    assert store._checkpointer.checkpoints == 1
    for k in range(3):  # small commits: the WAL was reset and truncated, no more inline checkpoints
        store.upsert_scores([score(f"v{k}", 0.5)])
    assert os.stat(wal).st_size <= WAL_KEEP_BYTES
    assert store._checkpointer.checkpoints == 1
    store._checkpointer.close()
    store._checkpointer = None
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
