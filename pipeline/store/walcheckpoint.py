"""SQLite WAL checkpoints off the write path.

By default SQLite checkpoints inside the ``COMMIT`` that takes the WAL past 1,000 pages
(``wal_autocheckpoint``): that commit copies every page the WAL holds back into the
database file and fsyncs it. A 10,000-row batch of distinct users dirties most pages of
the scores B-tree, so nearly every commit paid a checkpoint: 37 ms of a 70 ms batch on
a 200,000-user table (``benchmarks/bench_store.py``).

The store's write connections therefore set ``wal_autocheckpoint = 0`` and a
:class:`Checkpointer` thread (its own connection) runs ``PRAGMA wal_checkpoint(PASSIVE)``
after a commit has grown the WAL past ``pages`` pages: the same work, done while the
writer prepares its next batch (a PASSIVE checkpoint never blocks writers or readers).
If the checkpointer falls ``hard_limit`` pages behind (e.g. a reader pins an old
snapshot), the committing writer checkpoints itself, so the WAL stays bounded. The WAL's
size is read from its file, which SQLite reuses without shrinking: the write
connections' ``journal_size_limit`` (``WAL_KEEP_BYTES``) truncates it after a completed
checkpoint, so the size measures what was written since. When the last connection
closes SQLite checkpoints and removes the WAL, as usual.

Its CPU is the writer process's CPU (``benchmarks/bench_stream.py`` counts it).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("pipeline.store")
PAGES = 4_096  # x 4 KiB = 16 MiB of WAL before a background checkpoint
HARD_LIMIT = 65_536  # x 4 KiB = 256 MiB: the writer checkpoints itself
# journal_size_limit of the write connections (engine): after a completed checkpoint
# the next write truncates the WAL file to this, below the trigger. Without it the file
# keeps its largest size ever, and a WAL that once passed the hard limit would make the
# writer checkpoint inline at every commit from then on.
WAL_KEEP_BYTES = PAGES * 4096 // 2


class Checkpointer:
    """Background PASSIVE checkpoints of one SQLite database file."""

    def __init__(
        self, path: Path, *, pages: int = PAGES, hard_limit: int = HARD_LIMIT, page_size: int = 4096
    ) -> None:
        self.path = Path(path)
        self.wal = Path(f"{self.path}-wal")
        self.trigger_bytes = pages * page_size
        self.limit_bytes = hard_limit * page_size
        self.checkpoints = 0
        self._cond = threading.Condition()
        self._wanted = False
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpointer", daemon=True)
        self._thread.start()

    def after_commit(self, conn: sqlite3.Connection | None = None) -> None:
        """Called by the writer after each commit: start a checkpoint if the WAL grew
        past the trigger; checkpoint inline (on ``conn``) past the hard limit."""
        try:
            size = os.stat(self.wal).st_size
        except OSError:
            return
        if size >= self.limit_bytes and conn is not None:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self.checkpoints += 1
            return
        if size >= self.trigger_bytes:
            with self._cond:
                self._wanted = True
                self._cond.notify()

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        try:
            while True:
                with self._cond:
                    while not (self._wanted or self._closing):
                        self._cond.wait()
                    if self._closing:
                        return
                    self._wanted = False
                if db is None:
                    db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # busy or gone: the next commit asks again
                    log.debug("background WAL checkpoint of %s skipped: %s", self.path, exc)
        finally:
            if db is not None:
                db.close()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout=30)
