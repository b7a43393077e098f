"""The background writer: rows are written, then made durable, then the actions run."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from pipeline.stream.scorer import ScoreChunk
from pipeline.stream.sink import Writer


class RecordingStore:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def upsert_scores(self, columns, history=None):  # noqa: ANN001
        from pipeline.store.records import WriteResult

        n = len(columns["user_id"])  # rows column-wise (ScoreColumns)
        self.calls.append(f"upsert {n}")
        return WriteResult(n, 0, 0, 0)

    def sync(self) -> None:
        self.calls.append("sync")


def chunk(partition: int, users: list[str]) -> ScoreChunk:
    n = len(users)
    return ScoreChunk(partition, datetime(2026, 1, 1, tzinfo=UTC), "1", users, np.full(n, 0.5),
                      [None] * n, ["basic"] * n, np.full(n, 8.99), np.ones(n, bool))  # fmt: skip


def test_a_checkpoint_runs_only_after_its_rows_are_written_and_synced():
    store = RecordingStore()
    w = Writer(store, flush_interval_s=60.0)
    w.put(chunk(0, ["a", "b"]))
    w.after(lambda: store.calls.append("checkpoint 0"), partitions=(0,))
    w.flush()
    w.after(lambda: store.calls.append("metrics"), partitions=())  # nothing new written: no sync
    w.flush()
    w.close()
    assert store.calls == ["upsert 2", "sync", "checkpoint 0", "metrics"]
    assert w.stats["syncs"] == 1


def test_a_store_without_sync_still_works():
    class NoSync(RecordingStore):
        sync = None  # type: ignore[assignment]

    store = NoSync()
    w = Writer(store, flush_interval_s=60.0)
    w.put(chunk(1, ["a"]))
    w.after(lambda: store.calls.append("checkpoint 1"), partitions=(1,))
    w.flush()
    w.close()
    assert store.calls == ["upsert 1", "checkpoint 1"]
