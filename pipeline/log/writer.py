"""The write side of one partition directory: appends under ``flock``.

Writers (any number of processes) take ``flock`` on ``<partition>/.lock`` for each
batch, then re-read the true end of the log: if the active segment changed since this
process last looked (another producer appended or rolled), they reload it from its
index plus a scan of the bytes after the last index entry. A line without ``\\n`` at
the end (a *torn tail*: a writer crashed mid-write) is truncated away there; it was
never acknowledged and no reader ever returned it. Complete lines of a crashed batch
stay, because readers may already have consumed them (offsets never change). The batch
then goes out in one ``write`` and its index entries after it, so the index never
points past the data.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.clock import Clock
from pipeline.errors import LogError
from pipeline.log import segment as sg


@dataclass
class _Active:
    """The writer's view of the active segment; only trusted under the lock."""

    base: int
    fd: int
    ifd: int
    size: int
    count: int
    last_pos: int


class PartitionWriter:
    def __init__(
        self,
        directory: Path,
        partition: int,
        *,
        segment_bytes: int,
        index_interval: int,
        fsync: str,
        fsync_interval_s: float,
        clock: Clock,
    ) -> None:
        self.dir = directory
        self.partition = partition
        self.segment_bytes = segment_bytes
        self.interval = index_interval
        self.fsync = fsync
        self.fsync_interval_s = fsync_interval_s
        self.clock = clock
        self._wlock = threading.Lock()
        self._pid = os.getpid()
        self._lock_fd: int | None = None
        self._active: _Active | None = None
        self._last_sync = clock.monotonic()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """This partition's cross-process write lock (also used by retention)."""
        with self._wlock:
            if self._pid != os.getpid():  # forked: the inherited flock fd is shared
                self._pid, self._lock_fd, self._active = os.getpid(), None, None
            if self._lock_fd is None:
                self.dir.mkdir(parents=True, exist_ok=True)
                self._lock_fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def append(self, values: list[bytes]) -> tuple[int, int]:
        buf = b"\n".join(values) + b"\n"
        if buf.count(b"\n") != len(values):
            bad = next(i for i, v in enumerate(values) if b"\n" in v)
            raise LogError(
                f"value #{bad} contains a newline; a record is one line (encode it as JSON)"
            )
        with self.locked():
            try:
                a = self._writer()
                if a.size and a.size + len(buf) > self.segment_bytes:
                    a = self._roll(a)
                if a.size + len(buf) > sg.MAX_SEGMENT_BYTES:
                    raise LogError(
                        f"batch of {len(buf)} bytes is too large; append smaller batches"
                    )
                entries = sg.pick_entries(
                    sg.batch_starts(values, a.size), a.count, a.last_pos, self.interval
                )
                _write_all(a.fd, buf)
                if entries:
                    _write_all(a.ifd, sg.pack(entries))
                    a.last_pos = entries[-1][1]
                first = a.base + a.count
                a.size += len(buf)
                a.count += len(values)
                if self.fsync == "batch" or (
                    self.fsync == "interval"
                    and self.clock.monotonic() - self._last_sync >= self.fsync_interval_s
                ):
                    os.fsync(a.fd)
                    self._last_sync = self.clock.monotonic()
                return first, a.base + a.count
            except BaseException:
                self._close_active()  # the next append re-reads the true end
                raise

    def _writer(self) -> _Active:
        bases = sg.list_bases(self.dir)
        a = self._active
        if a is not None and bases and a.base == bases[-1] and os.fstat(a.fd).st_size == a.size:
            return a
        self._close_active()
        self._active = self._load_active(bases[-1]) if bases else self._create(0)
        return self._active

    def _load_active(self, base: int) -> _Active:
        fd = os.open(sg.log_path(self.dir, base), os.O_RDWR | os.O_APPEND)
        ipath = sg.index_path(self.dir, base)
        index = sg.read_index(ipath)
        size = os.fstat(fd).st_size
        clean = index is not None and ipath.stat().st_size == len(index) * sg.ENTRY_BYTES
        if index is not None and len(index):
            pos = index.last()[1]
            if pos >= size or not sg.check_entry(fd, pos):
                index, clean = None, False
        if index is None:
            index = sg.SegmentIndex()
        rel, pos = index.last()
        res = sg.scan(fd, pos, rel, pos, self.interval)
        index.extend(res.entries)
        if res.end < res.size:  # torn tail: never acknowledged, never returned by readers
            os.ftruncate(fd, res.end)
            index.truncate_at(res.end)
            clean = False
        if not clean or res.entries:
            sg.write_index(ipath, index)
        ifd = os.open(ipath, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        return _Active(base, fd, ifd, res.end, rel + res.count, index.last()[1])

    def _create(self, base: int) -> _Active:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(sg.log_path(self.dir, base), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        ifd = os.open(sg.index_path(self.dir, base), flags, 0o644)
        if self.fsync != "never":
            _fsync_dir(self.dir)
        return _Active(base, fd, ifd, 0, 0, 0)

    def _roll(self, a: _Active) -> _Active:
        if self.fsync != "never":
            os.fsync(a.fd)
        self._close_active()
        self._active = self._create(a.base + a.count)
        return self._active

    def _close_active(self) -> None:
        if self._active is not None:
            os.close(self._active.fd)
            os.close(self._active.ifd)
            self._active = None

    def delete_segments(self, bases: list[int]) -> None:
        """Delete whole sealed segments, oldest first, under the write lock."""
        with self.locked():
            current = sg.list_bases(self.dir)
            for b in sorted(bases):
                if current and b == current[-1]:
                    raise LogError(
                        f"refusing to delete the active segment {b} of partition {self.partition}"
                    )
                sg.log_path(self.dir, b).unlink(missing_ok=True)  # start offset moves here
                sg.index_path(self.dir, b).unlink(missing_ok=True)

    def close(self) -> None:
        self._close_active()
        if self._lock_fd is not None and self._pid == os.getpid():
            os.close(self._lock_fd)
        self._lock_fd = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(directory: Path) -> None:
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
