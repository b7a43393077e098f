"""The background writer: rows are written, then made durable, then the actions run."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pytest

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


# -- a full cache writes the closed history points and keeps the newest rows ---------------
def _day_chunks(seed: int, with_slots: bool, n_chunks: int = 120, users: int = 300) -> list[ScoreChunk]:
    """A catch-up's pending rows: batches of one partition in time order over five days
    (several per day), users in many of them; distinct users within a batch."""
    from datetime import timedelta

    r = np.random.default_rng(seed)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [f"u{i:04d}" for i in range(users)]
    out = []
    for k in range(n_chunks):
        slots = np.sort(r.choice(users, int(r.integers(5, 60)), replace=False)).astype(np.int64)
        n = len(slots)
        out.append(ScoreChunk(0, t0 + timedelta(hours=k), "1", [ids[s] for s in slots.tolist()],
                              r.random(n), [None] * n, ["basic"] * n, np.full(n, 8.99), np.ones(n, bool),
                              slots=slots if with_slots else None, slot_space=7 if with_slots else None))  # fmt: skip
    return out


def _rows(chunks: list[ScoreChunk]) -> set[tuple]:
    return {(c.features_time, u, float(r)) for c in chunks for u, r in zip(c.user_id, c.risk.tolist(), strict=True)}


def _point_rows(cols) -> set[tuple]:  # noqa: ANN001 - ScoreColumns
    times = [t.item().replace(tzinfo=UTC) for t in cols["features_time"]]
    return set(zip(times, cols["user_id"], cols["risk"].tolist(), strict=True))


@pytest.mark.parametrize("with_slots", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_split_open_is_coalesce_cut_at_each_users_newest_row(seed: int, with_slots: bool) -> None:
    from pipeline.store import HistoryPolicy
    from pipeline.stream.scorer import coalesce, split_open

    daily = HistoryPolicy(86_400)
    chunks = _day_chunks(seed, with_slots)
    closed, still = split_open(chunks, daily)
    assert _point_rows(closed) | _rows(still) == _rows(coalesce(chunks, daily))
    assert not _point_rows(closed) & _rows(still)
    assert len(_point_rows(closed)) == len(closed["user_id"]) and set(closed["model_version"]) <= {"1"}
    newest = {u: (c.features_time, r) for c in coalesce(chunks) for u, r in zip(c.user_id, c.risk.tolist(), strict=True)}
    assert {u: (c.features_time, r) for c in still for u, r in zip(c.user_id, c.risk.tolist(), strict=True)} == newest
    for t, u, _ in _point_rows(closed):  # an older day than the user's newest row, never its newest
        assert t.date() < newest[u][0].date()


@pytest.mark.parametrize("with_slots", [True, False])
def test_split_open_keeps_rows_newer_than_a_users_last_row_open(with_slots: bool) -> None:
    """Rows out of time order (a partition rewound to its checkpoint while the first
    pass's rows are still pending): the newer row stays open, so the write that takes the
    open rows still sees the user's newest score."""
    from datetime import timedelta

    from pipeline.store import HistoryPolicy
    from pipeline.stream.scorer import split_open

    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def one(days: int, risk: float) -> ScoreChunk:
        return ScoreChunk(0, t0 + timedelta(days=days), "1", ["a"], np.array([risk]), [None], ["basic"],
                          np.array([8.99]), np.ones(1, bool), slots=np.array([0]) if with_slots else None,
                          slot_space=1 if with_slots else None)  # fmt: skip

    closed, still = split_open([one(0, 0.1), one(5, 0.5), one(3, 0.3)], HistoryPolicy(86_400))
    assert sorted(float(c.risk[0]) for c in still) == [0.3, 0.5]  # day 5 (newest) and day 3 (last)
    assert closed["risk"].tolist() == [0.1]


@pytest.mark.parametrize("with_slots", [True, False])
def test_split_open_stops_once_the_open_rows_pass_the_limit(with_slots: bool) -> None:
    """With ``limit``: None exactly when the open rows would be more than it, else the
    same split as without."""
    from pipeline.store import HistoryPolicy
    from pipeline.stream.scorer import split_open

    daily = HistoryPolicy(86_400)
    for seed in range(3):
        chunks = _day_chunks(seed, with_slots)
        closed, still = split_open(chunks, daily)
        kept = sum(len(c) for c in still)
        for limit in (0, kept // 2, kept - 1):
            assert split_open(chunks, daily, limit=limit) is None
        for limit in (kept, kept + 1, 10**9):
            got = split_open(chunks, daily, limit=limit)
            assert got is not None
            assert _point_rows(got[0]) == _point_rows(closed) and _rows(got[1]) == _rows(still)


def test_a_cache_of_more_users_than_an_eviction_keeps_is_written_whole(tmp_path) -> None:
    """More distinct users pending than a quarter of the cache: the eviction is refused
    (counted), everything is written as by a writer that never evicts, same store."""
    from pipeline.clock import FakeClock
    from pipeline.store import Store

    def run(name: str, evicting: bool) -> tuple:
        store = Store(f"sqlite:///{tmp_path}/{name}.db", clock=FakeClock(datetime(2026, 2, 1, tzinfo=UTC)))
        w = Writer(store, flush_interval_s=3600.0, max_pending_rows=600)  # a quarter: 150 < 300 users
        w._evicts = evicting
        for c in _day_chunks(5, True):
            w.put(c)
            deadline = time.monotonic() + 10
            while w.pending_rows >= 300 and time.monotonic() < deadline:
                time.sleep(0.001)
        w.close()
        cur = store.current_scores(None).sort_values("user_id")
        hist = store.score_history().sort_values(["time", "user_id"])
        store.close()
        return cur[["user_id", "risk", "features_time"]].to_numpy().tolist(), hist.to_numpy().tolist(), w.stats

    cur_a, hist_a, stats_a = run("refusing", True)
    cur_b, hist_b, stats_b = run("plain", False)
    assert stats_a["evictions_refused"] >= 1 and stats_a["evictions"] == 0
    assert cur_a == cur_b and len(cur_a) == 300 and hist_a == hist_b
    assert stats_a["rows"] == stats_b["rows"]


@pytest.mark.parametrize(("with_slots", "dialect"), [(True, "sqlite"), (False, "sqlite"), (True, "postgresql")])
def test_evicting_writer_leaves_the_store_as_a_writer_that_writes_everything(tmp_path, with_slots: bool,
                                                                              dialect: str) -> None:  # fmt: skip
    """A small cache (evictions every few batches) and checkpoints: the same current
    scores and the same history as one write of every row, fewer score upserts."""
    import uuid

    from pipeline.clock import FakeClock
    from pipeline.store import Store
    from tests.needs import pg_unavailable
    from tests.store.conftest import PG_URLS, drop_schema, pg_url

    url = f"sqlite:///{tmp_path}/{{}}.db" if dialect == "sqlite" else pg_url()
    if url is None:
        pg_unavailable(PG_URLS)
    schemas: list[str] = []

    def open_store(name: str) -> Store:
        clock = FakeClock(datetime(2026, 2, 1, tzinfo=UTC))
        if dialect == "sqlite":
            return Store(url.format(name), clock=clock)
        schemas.append(f"t_{uuid.uuid4().hex[:12]}")
        return Store(url, schema=schemas[-1], clock=clock)

    def run(name: str, evicting: bool) -> tuple:
        store = open_store(name)
        w = Writer(store, flush_interval_s=3600.0, max_pending_rows=1_600)
        w._evicts = evicting
        for k, c in enumerate(_day_chunks(3, with_slots)):
            w.put(c)
            deadline = time.monotonic() + 10
            while w.pending_rows >= 800 and time.monotonic() < deadline:  # the writer takes a full cache
                time.sleep(0.001)
            if k % 40 == 39:  # a checkpoint of partition 0
                w.after(lambda: None, partitions=(0,))
        w.flush()
        w.close()
        cur = store.current_scores(None).sort_values("user_id")
        hist = store.score_history().sort_values(["time", "user_id"])
        store.close()
        cols = ["user_id", "risk", "features_time", "partition"]
        return cur[cols].to_numpy().tolist(), hist.to_numpy().tolist(), w.stats

    try:
        cur_a, hist_a, stats_a = run("evicting", True)
        cur_b, hist_b, stats_b = run("plain", False)
    finally:
        for schema in schemas:
            drop_schema(url, schema)
    assert cur_a == cur_b and len(cur_a) == 300
    assert hist_a == hist_b
    assert stats_a["evictions"] >= 2 and stats_b["evictions"] == 0
    assert stats_a["rows"] < stats_b["rows"]  # fewer current-score upserts
