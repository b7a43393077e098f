"""The read side of one partition directory: lock-free fetches.

Readers take no lock. They read a byte range with ``pread`` and split it on ``\\n``;
the bytes after the last newline (a line still being written) are ignored until a
later fetch finds them complete. Sequential fetches resume from a remembered byte
position; other offsets go through the segment list (binary search on base offsets)
and the sparse index (binary search), then scan at most one index interval. A sealed
segment's index is checked once against the next segment's base offset (its record
count must match) and rebuilt from the data if it is missing or wrong.
"""

from __future__ import annotations

import contextlib
import os
import threading
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import LogError, OffsetOutOfRangeError
from pipeline.log import segment as sg


@dataclass
class _Seg:
    """A reader's view of one segment."""

    base: int
    fd: int
    index: sg.SegmentIndex | None = None
    index_len: int = 0  # bytes of the index file already parsed
    counted_len: int = -1  # complete-line prefix counted so far (for the end offset)
    counted: int = 0
    avg: float = 256.0  # bytes per record, to size reads
    end: int | None = None  # sealed: the next segment's base offset (its records end there)


@dataclass(frozen=True, slots=True)
class SegmentMeta:
    base: int
    end: int  # offset after its last record
    bytes: int
    mtime: float
    path: Path


MAX_OPEN_SEGMENTS = 32  # per partition; replays move forward, so the oldest goes first


class PartitionReader:
    def __init__(self, directory: Path, partition: int, index_interval: int) -> None:
        self.dir = directory
        self.partition = partition
        self.interval = index_interval
        self._rlock = threading.Lock()
        self._bases: list[int] = []
        self._segs: dict[int, _Seg] = {}
        self._hint = (-1, -1, 0)  # (offset, segment base, byte position)

    def fetch_values(
        self, offset: int, max_records: int, max_bytes: int
    ) -> tuple[list[bytes], int]:
        if max_records <= 0:
            return [], offset
        with self._rlock:
            bases = self._bases or self._refresh()
            for _ in range(3):
                i = bisect_right(bases, offset) - 1
                if i < 0:
                    if not bases:
                        return [], offset
                    raise OffsetOutOfRangeError(
                        f"offset {offset} of partition {self.partition} is below its start "
                        f"offset {bases[0]} (deleted by retention); seek to >= {bases[0]} "
                        "or reset the group's offsets to earliest"
                    )
                try:
                    seg = self._seg(bases[i], bases[i + 1] if i + 1 < len(bases) else None)
                except FileNotFoundError:  # deleted by retention since we listed
                    bases = self._refresh()
                    continue
                values, nxt = self._read(seg, offset, max_records, max_bytes)
                if values or i + 1 < len(bases):
                    return values, nxt
                bases = self._refresh()  # at the end: has another process rolled?
                j = bisect_right(bases, offset) - 1
                if j >= 0 and bases[j] == seg.base:
                    return [], offset
            return [], offset

    def _read(
        self, seg: _Seg, offset: int, max_records: int, max_bytes: int
    ) -> tuple[list[bytes], int]:
        h_off, h_base, pos = self._hint
        skip = 0
        if h_off != offset or h_base != seg.base:
            rel0, pos = self._lookup(seg, offset - seg.base)
            skip = offset - seg.base - rel0
        if seg.end is not None:  # sealed: never read past its last record into the next one's offsets
            max_records = min(max_records, seg.end - offset)
        need = skip + max_records
        size = max(4096, int(min(max_bytes, max_records * seg.avg * 1.1) + skip * seg.avg * 1.5))
        at, lines, carry = pos, [], b""
        while True:
            # never allocate more than the segment holds (huge max_records/max_bytes)
            size = min(size, max(4096, os.fstat(seg.fd).st_size - at + 1))
            chunk = os.pread(seg.fd, size, at)
            at += len(chunk)
            data = carry + chunk if carry else chunk
            got = data.split(b"\n")
            carry = got.pop()  # partial line (still being written), or b""
            lines += got
            if len(chunk) < size or len(lines) >= need:
                break
            if len(lines) > skip and at - pos - len(carry) >= max_bytes:
                break  # enough bytes, and at least one record to return
            left = need - len(lines)
            size = max(4096, int(left * seg.avg * 1.2), 2 * len(carry))
        if seg.end is not None:
            self._check_sealed(seg, offset - skip, len(lines), eof=len(chunk) < size)
        if len(lines) <= skip:
            return [], offset
        used = at - pos - len(carry)
        seg.avg = max(1.0, 0.5 * seg.avg + 0.5 * used / len(lines)) if lines else seg.avg
        values = lines[skip:need]
        if used > max_bytes:  # keep within max_bytes, but always at least one record
            sizes = np.fromiter(map(len, values), dtype=np.int64, count=len(values)) + 1
            n = int(np.searchsorted(np.cumsum(sizes), max_bytes, side="right"))
            values = values[: max(n, 1)]
        if skip + len(values) < len(lines):
            kept = lines[: skip + len(values)]
            used = sum(map(len, kept)) + len(kept)
        nxt = offset + len(values)
        self._hint = (nxt, seg.base, pos + used)
        return values, nxt

    def _check_sealed(self, seg: _Seg, first: int, lines: int, eof: bool) -> None:
        """A sealed segment holds exactly the offsets ``base..end-1``: more lines (a newline
        written into a record) would hand out a record twice or skip one of the next
        segment, fewer (a newline overwritten) would stall every consumer there, silently."""
        assert seg.end is not None
        if first + lines > seg.end or (eof and first + lines < seg.end):
            found = "more" if first + lines > seg.end else "fewer"
            raise LogError(
                f"segment {sg.log_path(self.dir, seg.base)} holds {found} records than its offsets "
                f"{seg.base}..{seg.end - 1} (the next segment starts at {seg.end}): bytes in it were "
                "changed outside the log (a newline added or overwritten). Nothing was skipped; "
                "restore the segment from a backup, or copy its readable records elsewhere and "
                "rebuild the topic"
            )

    def _lookup(self, seg: _Seg, rel: int) -> tuple[int, int]:
        if seg.index is None:
            self._load_index(seg)
        assert seg.index is not None
        if rel >= seg.index.last()[0] and seg.base == self._bases[-1]:
            self._extend_index(seg)  # active segment: pick up entries written since
        rel0, pos = seg.index.lookup(rel)
        if not sg.check_entry(seg.fd, pos):  # inconsistent index: rebuild (derived data)
            seg.index = sg.SegmentIndex.of(sg.scan(seg.fd, 0, 0, 0, self.interval).entries)
            rel0, pos = seg.index.lookup(rel)
        return rel0, pos

    def _load_index(self, seg: _Seg, sealed_end: int | None = None) -> None:
        """Load, check and if needed rebuild a segment's index. A sealed segment must
        hold exactly ``sealed_end - base`` records; a rebuilt sealed index is saved."""
        path = sg.index_path(self.dir, seg.base)
        index = sg.read_index(path)
        if index is not None and len(index) and not sg.check_entry(seg.fd, index.last()[1]):
            index = None
        if sealed_end is None:
            if index is None:
                index = sg.SegmentIndex.of(sg.scan(seg.fd, 0, 0, 0, self.interval).entries)
        else:
            rebuilt = index is None
            for _ in range(2):
                index = sg.SegmentIndex() if index is None else index
                rel, pos = index.last()
                res = sg.scan(seg.fd, pos, rel, pos, self.interval)
                if rel + res.count == sealed_end - seg.base:
                    break
                index, rebuilt = None, True  # the index lied about the data: rebuild
            else:
                raise LogError(
                    f"segment {sg.log_path(self.dir, seg.base)} holds {res.count} records but "
                    f"the next segment starts at offset {sealed_end}; the partition directory "
                    "was modified outside the log (a segment deleted, cut or edited). Nothing was "
                    "skipped: restore the segments from a backup (a missing .index file is harmless: "
                    "it is rebuilt)"
                )
            if res.entries:
                index.extend(res.entries)
                rebuilt = True
            if rebuilt:
                sg.write_index(path, index)  # sealed: no writer appends to it any more
        seg.index, seg.index_len = index, len(index) * sg.ENTRY_BYTES

    def _extend_index(self, seg: _Seg) -> None:
        assert seg.index is not None
        with (
            contextlib.suppress(FileNotFoundError),
            open(sg.index_path(self.dir, seg.base), "rb") as f,
        ):
            f.seek(seg.index_len)
            raw = f.read()
            new = sg.SegmentIndex.from_bytes(raw)
            if new is None or (len(new) and len(seg.index) and new.rels[0] <= seg.index.last()[0]):
                return self._load_index(seg)  # replaced by a repairing writer: reload
            seg.index.extend(list(zip(new.rels, new.poses, strict=True)))
            seg.index_len += len(new) * sg.ENTRY_BYTES
        return None

    def _seg(self, base: int, sealed_end: int | None = None) -> _Seg:
        seg = self._segs.get(base)
        if seg is None:
            if len(self._segs) >= MAX_OPEN_SEGMENTS:  # bound open files on long replays
                oldest = min(self._segs)
                os.close(self._segs.pop(oldest).fd)
            seg = _Seg(base, os.open(sg.log_path(self.dir, base), os.O_RDONLY))
            self._segs[base] = seg
            if sealed_end is not None:
                self._load_index(seg, sealed_end)
        if sealed_end is not None and seg.end is None:  # sealed now (perhaps rolled since opened)
            seg.end = sealed_end
        return seg

    def refresh(self) -> list[int]:
        with self._rlock:
            return self._refresh()

    def _refresh(self) -> list[int]:
        bases = sg.list_bases(self.dir)
        for gone in set(self._segs) - set(bases):
            os.close(self._segs.pop(gone).fd)
        self._bases = bases
        return bases

    # -- metadata ----------------------------------------------------------------------
    def offsets(self) -> tuple[int, int]:
        """``(start_offset, end_offset)``; counts only complete lines."""
        with self._rlock:
            bases = self._refresh()
            if not bases:
                return 0, 0
            seg = self._seg(bases[-1])
            if seg.counted_len > os.fstat(seg.fd).st_size:  # cut outside the log: recount, never
                seg.index, seg.counted_len, self._hint = None, -1, (-1, -1, 0)  # report a stale end
            if seg.counted_len < 0:
                if seg.index is None:
                    self._load_index(seg)
                assert seg.index is not None
                seg.counted, seg.counted_len = seg.index.last()
            n, end = sg.count_lines(seg.fd, seg.counted_len)
            seg.counted += n
            seg.counted_len = end
            return bases[0], seg.base + seg.counted

    def segments(self) -> list[SegmentMeta]:
        start, end = self.offsets()
        bases = self._bases
        out = []
        for i, b in enumerate(bases):
            path = sg.log_path(self.dir, b)
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                out.append(
                    SegmentMeta(
                        b,
                        bases[i + 1] if i + 1 < len(bases) else end,
                        st.st_size,
                        st.st_mtime,
                        path,
                    )
                )
        return out

    def close(self) -> None:
        with self._rlock:
            for seg in self._segs.values():
                os.close(seg.fd)
            self._segs.clear()
