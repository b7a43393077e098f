"""The worker's background writer: scores, metrics, checkpoints and heartbeats.

The batch loop never waits for the database. It hands each micro-batch's score rows to
:class:`Writer` and goes on; one background thread writes them. Like Kafka Streams'
record cache, rows that accumulate while a write is running are *coalesced*: the next
write sends all of them in one transaction, and a user scored by several of those
batches is written once per history interval (``HistoryPolicy``: its newest score in
each interval, the rows ``score_history`` keeps; the newest of them is its current
score). So the store costs about one row per user per flush, not one per event, the
history does not depend on how rows happened to group into flushes, and the scores are
at most ``flush_interval_s`` (plus one write) behind the batches.

Ordering is what makes checkpoints safe: an action queued with :meth:`Writer.after`
(a checkpoint of partition p, its offset commit) runs only after every row of p handed
over before it is written, and made durable (:meth:`Store.sync`: SQLite commits with
``synchronous=NORMAL`` reach the disk at its next WAL checkpoint, so the writer fsyncs
the WAL once before running the actions; a power cut then cannot keep a checkpoint
whose scores it lost). A checkpoint therefore never covers a batch whose scores are
not in the store; a crash replays at most the batches after the last checkpoint, and
rewriting their scores is idempotent. A barrier flushes only its own partition's rows
(partitions never share a user), so the other partitions keep coalescing.

``flush_interval_s`` bounds how long a row may wait when nothing else flushes it. The
worker raises it to the checkpoint interval while it works through a backlog (the
scores are then stale by the lag anyway, and each user is written once per checkpoint
instead of once per flush) and lowers it again when it keeps up with the log.

The writer also computes the high-risk rows' reasons, deferred by the batch loop
(:func:`pipeline.stream.scorer.resolve_reasons`): only for rows that survive coalescing
and can be their user's current score in their transaction, in one contributions call
per write (XGBoost predictions on a tree booster are thread-safe, so this runs beside the
loop's own ``inplace_predict``).

SQLite releases the GIL while it writes, so the writes overlap the batch loop's numba
and XGBoost work (which release it too). Half of ``max_pending_rows`` waiting is a full
cache: it is evicted by writing the history points no later row can replace and keeping
each user's newest row pending (its score upsert waits for the next flush; everything is
written at once if those rows alone are more than a quarter of ``max_pending_rows``, or
the store cannot append history alone); if the writer still falls ``max_pending_rows``
behind, :meth:`Writer.put` blocks (backpressure, time counted).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from pipeline.store.records import HistoryPolicy
from pipeline.stream.scorer import (
    ScoreChunk,
    coalesce,
    drop_superseded_reasons,
    resolve_reasons,
    split_open,
    to_columns,
)

log = logging.getLogger("pipeline.stream")
DEFAULT_HISTORY = HistoryPolicy()


class _Barrier:
    __slots__ = ("action", "partitions")

    def __init__(self, action: Callable[[], None], partitions: frozenset[int] | None) -> None:
        self.action = action
        self.partitions = partitions  # rows to write first: None all, empty none


class Writer:
    def __init__(
        self,
        store: Any,
        *,
        flush_interval_s: float = 2.0,
        max_pending_rows: int = 500_000,
        max_write_rows: int = 250_000,
        heartbeat: Callable[[], Any] | None = None,
        heartbeat_interval_s: float = 1.0,
        name: str = "writer",
        history: HistoryPolicy | None = DEFAULT_HISTORY,
    ) -> None:
        self.store = store
        self.history = history
        self.flush_interval_s = flush_interval_s
        self.max_pending_rows = max_pending_rows
        self.max_write_rows = max_write_rows
        self._heartbeat = heartbeat
        self.heartbeat_interval_s = heartbeat_interval_s
        self._cond = threading.Condition()
        self._chunks: list[tuple[float, ScoreChunk]] = []  # (arrival, rows), in arrival order
        self._barriers: list[_Barrier] = []
        self._pending_rows = 0  # handed over, not yet written
        self._closing = False
        self.error: BaseException | None = None
        self.owned: Any = None  # latest heartbeat answer
        self.heartbeat_at = 0.0
        # CPU seconds of this thread (write_s, actions_s, heartbeat_s); backpressure_s is wall
        # (reasons_s: the deferred reasons of the rows written, inside write_s; reasons_rows: those rows)
        self.stats = {"write_s": 0.0, "rows": 0, "history": 0, "writes": 0, "stale": 0, "actions_s": 0.0,
                      "backpressure_s": 0.0, "heartbeat_s": 0.0, "syncs": 0, "reasons_s": 0.0,
                      "reasons_rows": 0, "evictions": 0, "evictions_refused": 0}  # fmt: skip
        # a full cache writes the closed history points only (``_evict``) when the store can
        self._evicts = callable(getattr(store, "append_score_history", None))
        self._unsynced = False  # rows committed since the last Store.sync()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- batch-loop side -----------------------------------------------------------------
    def put(self, chunk: ScoreChunk) -> float:
        """Hand over one batch's score rows; blocks only when far behind. Returns the
        seconds it waited (backpressure)."""
        waited = 0.0
        with self._cond:
            self._raise()
            if self._pending_rows >= self.max_pending_rows:
                t = time.perf_counter()
                while self._pending_rows >= self.max_pending_rows and self.error is None:
                    self._cond.wait(0.1)
                waited = time.perf_counter() - t
                self.stats["backpressure_s"] += waited
                self._raise()
            first = not self._chunks
            self._chunks.append((time.monotonic(), chunk))
            self._pending_rows += len(chunk)
            if first or self._pending_rows >= self.max_pending_rows // 2:
                self._cond.notify_all()  # the writer (re)computes when to flush
        return waited

    def after(self, action: Callable[[], None], partitions: Iterable[int] | None = None) -> None:
        """Run ``action`` in the writer thread once the rows handed over so far are written:
        all of them (``partitions=None``), or only those of ``partitions`` (``()``: none)."""
        with self._cond:
            self._raise()
            self._barriers.append(
                _Barrier(action, None if partitions is None else frozenset(partitions))
            )
            self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything handed over (rows and actions) is done."""
        done = threading.Event()
        self.after(done.set)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done.wait(0.1):
            self._raise()
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"store writes did not finish within {timeout} s")
        self._raise()

    def close(self, flush: bool = True) -> None:
        """Stop the thread; with ``flush=False`` pending rows and actions are dropped (as a
        crash would drop them: the next owner replays them from the last checkpoint)."""
        if flush and self.error is None and self._thread.is_alive():
            self.flush()
        with self._cond:
            if not flush:
                self._chunks, self._barriers = [], []
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=30)

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    # -- writer thread -------------------------------------------------------------------
    def _due(self) -> float | None:
        """Seconds until the next thing to do (0: now), or None to wait for a put."""
        if self._barriers or self._closing or self._pending_rows >= self.max_pending_rows // 2:
            return 0.0
        now = time.monotonic()
        waits = []
        if self._chunks:
            waits.append(self._chunks[0][0] + self.flush_interval_s - now)
        if self._heartbeat is not None:
            waits.append(self.heartbeat_at + self.heartbeat_interval_s - now)
        return max(0.0, min(waits)) if waits else None

    def _take(self) -> tuple[list[ScoreChunk], list[_Barrier], float | None]:
        """Under the lock: the rows to write now (oldest first), the barriers to run after,
        and, when the rows are taken only because the cache is full (no barrier, interval
        or close asks for them), the oldest row's arrival (an eviction: :meth:`_evict`)."""
        barriers, self._barriers = self._barriers, []
        if not self._chunks:
            return [], barriers, None
        due = self._closing or time.monotonic() - self._chunks[0][0] >= self.flush_interval_s
        full = self._pending_rows >= self.max_pending_rows // 2
        if full and not due and not barriers and self.history is not None and self._evicts:
            arrival = self._chunks[0][0]
            chunks, self._chunks = [c for _, c in self._chunks], []
            return chunks, barriers, arrival
        everything = due or full  # a full cache that cannot evict (see above) is written whole
        wanted: set[int] = set()
        for b in barriers:
            if b.partitions is None:
                everything = True
                break
            wanted |= b.partitions
        if everything:
            chunks, self._chunks = [c for _, c in self._chunks], []
        else:
            chunks = [c for _, c in self._chunks if c.partition in wanted]
            self._chunks = [tc for tc in self._chunks if tc[1].partition not in wanted]
        return chunks, barriers, None

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while (wait := self._due()) is None or wait > 0:
                        self._cond.wait(wait)
                    if self._closing and not self._chunks and not self._barriers:
                        return
                    chunks, barriers, evicting = self._take()
                if chunks and not (evicting is not None and self._evict(chunks, evicting)):
                    self._write(chunks)
                    self._unsynced = True
                    with self._cond:
                        self._pending_rows -= sum(len(c) for c in chunks)
                        self._cond.notify_all()
                t = time.thread_time()
                if barriers and self._unsynced:
                    self._sync()  # rows durable before a checkpoint can claim them
                for b in barriers:
                    b.action()
                self.stats["actions_s"] += time.thread_time() - t
                if (
                    self._heartbeat is not None
                    and time.monotonic() - self.heartbeat_at >= self.heartbeat_interval_s
                ):
                    self.beat()
        except BaseException as exc:  # noqa: BLE001 - handed to the batch loop, which stops the worker
            log.error("store writer failed: %s", exc)
            with self._cond:
                self.error = exc
                self._cond.notify_all()

    def _sync(self) -> None:
        sync = getattr(self.store, "sync", None)  # test doubles may not have one
        if sync is not None:
            sync()
            self.stats["syncs"] += 1
        self._unsynced = False

    def beat(self) -> None:
        t = time.thread_time()
        try:
            self.owned = self._heartbeat()  # type: ignore[misc]
            self.heartbeat_at = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - a busy store only delays the next beat
            log.warning("heartbeat failed (will retry): %s", exc)
            self.heartbeat_at = time.monotonic()
        self.stats["heartbeat_s"] += time.thread_time() - t

    def _evict(self, chunks: list[ScoreChunk], arrival: float) -> bool:
        """The cache is full: write only the history points no later row can replace
        (each user's last row in each interval older than its newest row's,
        :func:`~pipeline.stream.scorer.split_open`) and keep each user's newest row
        pending, with the oldest row's arrival (the flush interval still bounds how long a
        score waits). Its current-score upsert, the costly part of a write (a B-tree
        row per user), then happens once per flush or checkpoint instead of once per
        eviction: in a catch-up (bench_stream, 1M events of 100,000 users) three evictions
        each upserted ~58,000 users' scores of which the next write replaced almost all.

        False (nothing done) when the newest rows alone are more than a quarter of
        ``max_pending_rows``: evicting would not free enough, and the caller writes
        everything, as before (the split stops as soon as it knows: ``split_open``'s
        ``limit``)."""
        t = time.thread_time()
        split = split_open(chunks, self.history, limit=self.max_pending_rows // 4)  # type: ignore[arg-type]
        if split is None:
            self.stats["evictions_refused"] += 1
            self.stats["write_s"] += time.thread_time() - t
            return False
        closed, still = split
        kept = sum(len(c) for c in still)
        if len(closed["user_id"]):
            self.stats["history"] += self.store.append_score_history(closed, history=self.history)
            self._unsynced = True
        self.stats["evictions"] += 1
        self.stats["write_s"] += time.thread_time() - t
        with self._cond:
            self._chunks[:0] = [(arrival, c) for c in still]  # older than anything put since
            self._pending_rows -= sum(len(c) for c in chunks) - kept
            self._cond.notify_all()
        return True

    def _write(self, chunks: list[ScoreChunk]) -> None:
        """All pending rows, one per user (the newest), in transactions of at most
        ``max_write_rows`` rows (by default a flush is one transaction: each one rewrites
        most pages of the scores table, so fewer, larger ones cost less per row; a lower
        cap shortens the hold on SQLite's single write lock). The high-risk rows'
        deferred reasons are computed here, only for rows that survive coalescing and can
        be their user's current score in their transaction."""
        t = time.thread_time()
        groups: list[list[ScoreChunk]] = [[]]
        size = 0
        for c in coalesce(chunks, self.history):
            while len(c):
                room = self.max_write_rows - size
                if len(c) > room:
                    head, c = c.take(list(range(room))), c.take(list(range(room, len(c))))
                else:
                    head, c = c, c.take([])
                groups[-1].append(head)
                size += len(head)
                if size >= self.max_write_rows:
                    groups.append([])
                    size = 0
        r = time.thread_time()
        for group in groups:
            drop_superseded_reasons(group)  # only a user's current score in its write keeps reasons
        self.stats["reasons_rows"] += resolve_reasons([c for group in groups for c in group])
        self.stats["reasons_s"] += time.thread_time() - r
        for group in groups:
            if group:
                self._upsert(group)
        self.stats["write_s"] += time.thread_time() - t

    def _upsert(self, chunks: list[ScoreChunk]) -> None:
        res = self.store.upsert_scores(to_columns(chunks), history=self.history)
        self.stats["rows"] += res.scores
        self.stats["history"] += res.history
        self.stats["stale"] += res.stale
        self.stats["writes"] += 1
