"""Segment files and their sparse offset index (Kafka's layout, JSON-lines records).

A partition directory holds segments named by the offset of their first record,
``00000000000000000000.log`` (20 digits, so names sort like offsets). A record is one
line; its offset is its base offset plus its line number. Beside each segment a binary
``.index`` holds little-endian ``(relative offset: u32, byte position: u32)`` pairs,
one each time at least ``interval`` bytes were written since the previous entry (the
first record, at byte 0, is implied). The entries follow from the data alone, so the
index is derived: :func:`scan` rebuilds exactly the same entries after a crash or if
the file is missing, and readers treat a wrong-looking index as missing.
"""

from __future__ import annotations

import os
import uuid
from array import array
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LOG = ".log"
INDEX = ".index"
ENTRY_BYTES = 8
MAX_SEGMENT_BYTES = (1 << 31) - 1  # positions are u32; keep clear of the edge
_CHUNK = 16 << 20


def seg_name(base: int) -> str:
    return f"{base:020d}"


def log_path(directory: Path, base: int) -> Path:
    return directory / f"{seg_name(base)}{LOG}"


def index_path(directory: Path, base: int) -> Path:
    return directory / f"{seg_name(base)}{INDEX}"


def list_bases(directory: Path) -> list[int]:
    """Base offsets of the segments in ``directory``, ascending."""
    out = []
    try:
        with os.scandir(directory) as it:
            for e in it:
                n = e.name
                if n.endswith(LOG) and len(n) == 24 and n[:20].isdigit():
                    out.append(int(n[:20]))
    except FileNotFoundError:
        return []
    out.sort()
    return out


@dataclass
class SegmentIndex:
    """Sparse index entries of one segment; lookup is a binary search."""

    rels: array = field(default_factory=lambda: array("I"))
    poses: array = field(default_factory=lambda: array("I"))

    @classmethod
    def of(cls, entries: list[tuple[int, int]]) -> SegmentIndex:
        index = cls()
        index.extend(entries)
        return index

    def __len__(self) -> int:
        return len(self.rels)

    def lookup(self, rel: int) -> tuple[int, int]:
        """Last entry at or before relative offset ``rel`` (``(0, 0)`` if none)."""
        i = bisect_right(self.rels, rel) - 1
        return (self.rels[i], self.poses[i]) if i >= 0 else (0, 0)

    def last(self) -> tuple[int, int]:
        return (self.rels[-1], self.poses[-1]) if self.rels else (0, 0)

    def extend(self, entries: list[tuple[int, int]]) -> None:
        for r, p in entries:
            self.rels.append(r)
            self.poses.append(p)

    def truncate_at(self, size: int) -> bool:
        """Drop entries at or past byte ``size`` (after a torn tail was cut off)."""
        keep = bisect_right(self.poses, size - 1)
        if keep == len(self.poses):
            return False
        del self.rels[keep:], self.poses[keep:]
        return True

    def to_bytes(self) -> bytes:
        return pack(list(zip(self.rels, self.poses, strict=True)))

    @classmethod
    def from_bytes(cls, raw: bytes) -> SegmentIndex | None:
        """Parse an index file; ``None`` if it is not a well-formed, increasing index."""
        if len(raw) % ENTRY_BYTES:
            raw = raw[: len(raw) - len(raw) % ENTRY_BYTES]  # a crash mid-entry: drop it
        pairs = np.frombuffer(raw, dtype="<u4").reshape(-1, 2).astype(np.int64)
        rels, poses = pairs[:, 0], pairs[:, 1]
        if len(rels) and (
            rels[0] == 0
            or poses[0] == 0
            or (np.diff(rels) <= 0).any()
            or (np.diff(poses) <= 0).any()
        ):
            return None
        return cls(
            array("I", rels.astype(np.uint32).tobytes()),
            array("I", poses.astype(np.uint32).tobytes()),
        )


def pack(entries: list[tuple[int, int]]) -> bytes:
    return np.asarray(entries, dtype="<u4").reshape(-1, 2).tobytes() if entries else b""


def pick_entries(
    starts: np.ndarray, first_rel: int, last_pos: int, interval: int
) -> list[tuple[int, int]]:
    """Index entries for records starting at ``starts`` (ascending byte positions, record
    ``i`` has relative offset ``first_rel + i``), given the previous entry at ``last_pos``.

    Rule: an entry goes on the first record starting at least ``interval`` bytes after
    the previous entry. Writers and :func:`scan` share this so rebuilds are identical.
    """
    out = []
    threshold = last_pos + interval
    n = len(starts)
    while True:
        i = int(np.searchsorted(starts, threshold, side="left"))
        if i >= n:
            return out
        pos = int(starts[i])
        out.append((first_rel + i, pos))
        threshold = pos + interval


def batch_starts(values: list[bytes], at: int) -> np.ndarray:
    """Byte positions where each of ``values`` will start when written at ``at``."""
    ends = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    ends += 1
    np.cumsum(ends, out=ends)
    starts = np.empty_like(ends)
    starts[0] = at
    starts[1:] = ends[:-1] + at
    return starts


@dataclass
class ScanResult:
    entries: list[tuple[int, int]]  # index entries found after the starting point
    count: int  # records counted (complete lines) from the starting point
    end: int  # byte position just after the last complete line
    size: int  # bytes present in the file (end < size means a torn tail)


def scan(fd: int, pos: int, first_rel: int, last_pos: int, interval: int) -> ScanResult:
    """Read a segment from ``pos`` (a record boundary with relative offset ``first_rel``)
    to EOF: count complete lines and derive index entries after ``last_pos``."""
    entries: list[tuple[int, int]] = []
    count, end, at = 0, pos, pos
    carry = b""
    while True:
        chunk = os.pread(fd, _CHUNK, at)
        if not chunk:
            break
        at += len(chunk)
        data = carry + chunk if carry else chunk
        nl = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
        if len(nl):
            base = at - len(data)
            starts = np.empty(len(nl), dtype=np.int64)
            starts[0] = end
            starts[1:] = nl[:-1] + 1 + base
            new = pick_entries(starts, first_rel + count, last_pos, interval)
            if new:
                entries += new
                last_pos = new[-1][1]
            count += len(nl)
            end = base + int(nl[-1]) + 1
            carry = data[int(nl[-1]) + 1 :]
        else:
            carry = data
    return ScanResult(entries, count, end, at)


def count_lines(fd: int, pos: int) -> tuple[int, int]:
    """Complete lines from ``pos`` to EOF and the byte position after the last one."""
    n, end, at = 0, pos, pos
    while True:
        chunk = os.pread(fd, _CHUNK, at)
        if not chunk:
            return n, end
        at += len(chunk)
        last = chunk.rfind(b"\n")
        if last >= 0:
            n += chunk.count(b"\n", 0, last + 1)
            end = at - len(chunk) + last + 1


def write_index(path: Path, index: SegmentIndex) -> None:
    """Replace an index file atomically (temp + rename): readers see old or new."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(index.to_bytes())
    os.replace(tmp, path)


def read_index(path: Path) -> SegmentIndex | None:
    try:
        return SegmentIndex.from_bytes(path.read_bytes())
    except FileNotFoundError:
        return None


def check_entry(fd: int, pos: int) -> bool:
    """An entry must point just after a newline (the start of a record)."""
    return pos == 0 or os.pread(fd, 1, pos - 1) == b"\n"
