"""PostgreSQL binary ``COPY`` payloads, built column-wise with numpy.

The text format makes both sides work per value: the client formats every float and
timestamp as text (``repr`` of a float is ~1 us), the server parses it back. The binary
format (https://www.postgresql.org/docs/current/sql-copy.html, "Binary Format") carries
floats and timestamps as fixed-width big-endian numbers, so they are written here as
whole numpy columns and the server copies them in. On a 10,000-row scores batch this
took the server's ``COPY`` from ~13-20 ms to ~7-9 ms of CPU.

Layout: an 11-byte signature, two int32s (flags, extension length), then per row an
int16 field count and per field an int32 byte length (-1: NULL) followed by that many
bytes; an int16 -1 ends the data. Columns are converted with numpy (fixed-width values
as ``(rows, width)`` big-endian byte views, text as one concatenated UTF-8 blob), then
one compiled loop (numba, ``nogil``) lays the rows out: a byte-column-at-a-time numpy
scatter (one fancy-indexed assignment per byte of width) took ~4.3 ms of the ~9 ms a
10,000-row scores payload cost to build, the loop ~0.5 ms; the build is the client's
side of the ``COPY`` the server waits on (``bench_store``).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress, repeat

import numpy as np

from pipeline.errors import InvalidRowError

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z in microseconds since 1970
JSONB_VERSION = 1  # the first byte of a jsonb value in binary form
_INT4 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a payload: ``sizes`` (bytes per row, -1 for NULL) and a writer."""

    sizes: np.ndarray  # int64, one per row
    fixed: np.ndarray | None = None  # (rows, width) uint8: big-endian values
    blob: np.ndarray | None = None  # uint8: the non-NULL values' bytes, concatenated
    prefix: int | None = None  # a byte before each non-NULL value (jsonb's version)

    def parts(self, base: int) -> tuple[np.ndarray, np.ndarray]:
        """(each row's value offset in the payload's data blob, given this column's data
        starts at ``base``; this column's data bytes)."""
        n = len(self.sizes)
        if self.fixed is not None:
            width = self.fixed.shape[1]
            return base + np.arange(n, dtype=np.int64) * width, self.fixed.reshape(-1)
        assert self.blob is not None
        present = self.sizes >= 0
        lens = self.sizes[present] - (0 if self.prefix is None else 1)
        offs = np.zeros(n, dtype=np.int64)
        offs[present] = base + np.cumsum(lens) - lens
        return offs, self.blob


def float8(values: np.ndarray | Sequence[float | None]) -> Column:
    """``double precision``; NaN or None is NULL."""
    arr = np.asarray(values, dtype=np.float64)  # None -> NaN
    null = np.isnan(arr)
    return _fixed(arr.astype(">f8"), null)


def int4(values: Sequence[int | None], what: str) -> Column:
    """``integer``; None is NULL. A value outside int32 is an ``InvalidRowError`` (the
    text format's server-side "out of range" error, raised before anything is sent)."""
    null = _nulls(values)
    if null is None:
        arr = np.array(values, dtype=np.int64)
        null = np.zeros(len(arr), dtype=bool)
    else:
        arr = np.array([0 if v is None else v for v in values], dtype=np.int64)
    if len(arr) and (arr.min() < _INT4[0] or arr.max() > _INT4[1]):
        i = int(np.flatnonzero((arr < _INT4[0]) | (arr > _INT4[1]))[0])
        raise InvalidRowError(f"{what} of row {i} is {values[i]!r}: out of the integer range")
    return _fixed(arr.astype(">i4"), null)


def boolean(values: Sequence[bool]) -> Column:
    return _fixed(np.asarray(values, dtype=bool).astype(np.uint8), np.zeros(len(values), bool))


def timestamptz(us: np.ndarray) -> Column:
    """``timestamptz`` from ``datetime64[us]`` (UTC; NaT is NULL)."""
    t = np.asarray(us).astype("datetime64[us]", copy=False)
    null = np.isnat(t)
    return _fixed((t.view(np.int64) - PG_EPOCH_US).astype(">i8"), null)


def text(values: Sequence[str | None], jsonb: bool = False) -> Column:
    """``varchar``/``text`` (or ``jsonb`` text, with its version byte); None is NULL."""
    n = len(values)
    null = _nulls(values)
    present = list(values) if null is None else list(compress(values, ~null))
    joined = "".join(present)
    raw = joined.encode()
    if len(raw) == len(joined):  # ASCII: byte lengths are character lengths
        lens = np.fromiter(map(len, present), np.int64, len(present))
    else:
        encoded = [v.encode() for v in present]
        lens = np.fromiter(map(len, encoded), np.int64, len(encoded))
    extra = 1 if jsonb else 0
    sizes = np.full(n, -1, np.int64)
    if null is None:
        sizes[:] = lens + extra
    else:
        sizes[~null] = lens + extra
    blob = np.frombuffer(raw, dtype=np.uint8)
    return Column(sizes, blob=blob, prefix=JSONB_VERSION if jsonb else None)


def _nulls(values: Sequence[object]) -> np.ndarray | None:
    """Which values are None (C-speed), or None when none is."""
    if None not in values:
        return None
    return np.fromiter(map(operator.is_, values, repeat(None)), dtype=bool, count=len(values))


def _fixed(big_endian: np.ndarray, null: np.ndarray) -> Column:
    width = big_endian.dtype.itemsize
    sizes = np.where(null, -1, width).astype(np.int64)
    return Column(sizes, fixed=big_endian.view(np.uint8).reshape(-1, width))


def payload(columns: Sequence[Column], *, head: bool = True, tail: bool = True) -> bytes:
    """The whole ``COPY ... FROM STDIN (FORMAT BINARY)`` input for rows given column-wise
    (every column the same length, in the ``COPY`` statement's column order). A part of
    a longer input leaves out the signature (``head=False``: not the first part) or the
    end marker (``tail=False``: not the last): the parts, concatenated, are one input."""
    k = len(columns)
    n = len(columns[0].sizes) if k else 0
    if any(len(c.sizes) != n for c in columns):
        raise ValueError("binary COPY columns differ in length")
    lead = len(SIGNATURE) if head else 0
    body = 2 * n + sum(int(4 * n + np.maximum(c.sizes, 0).sum()) for c in columns)
    buf = np.empty(lead + body + (2 if tail else 0), dtype=np.uint8)
    buf[:lead] = np.frombuffer(SIGNATURE, dtype=np.uint8)[:lead]
    if tail:
        buf[-2:] = 0xFF  # int16 -1: end of data
    if n:
        offs = np.empty((k, n), dtype=np.int64)
        data, base = [], 0
        for j, col in enumerate(columns):
            offs[j], part = col.parts(base)
            data.append(part)
            base += len(part)
        sizes = np.stack([c.sizes for c in columns])
        prefix = np.array([-1 if c.prefix is None else c.prefix for c in columns], dtype=np.int64)
        end = _kernel()(buf, lead, sizes, offs, np.concatenate(data), prefix)
        assert end == lead + body, "binary COPY layout: sizes and data disagree"
    return buf.tobytes()


def _lay_out(buf, at, sizes, offs, blob, prefix):  # type: ignore[no-untyped-def]
    """Write the rows from byte ``at`` of ``buf``: per row the field count, per field its
    int32 big-endian length (``sizes[j, i]``, -1: NULL) and its bytes (a ``prefix``
    byte, then ``sizes - 1`` bytes of ``blob`` from ``offs[j, i]``). Returns the end."""
    k, n = sizes.shape
    p = at
    for i in range(n):
        buf[p] = (k >> 8) & 0xFF
        buf[p + 1] = k & 0xFF
        p += 2
        for j in range(k):
            s = sizes[j, i]
            v = s & 0xFFFFFFFF
            buf[p] = (v >> 24) & 0xFF
            buf[p + 1] = (v >> 16) & 0xFF
            buf[p + 2] = (v >> 8) & 0xFF
            buf[p + 3] = v & 0xFF
            p += 4
            if s > 0:
                o = offs[j, i]
                if prefix[j] >= 0:
                    buf[p] = prefix[j]
                    p += 1
                    s -= 1
                for b in range(s):  # (a slice assignment per field was 5x slower)
                    buf[p + b] = blob[o + b]
                p += s
    return p


_COMPILED: list[object] = []


def _kernel():  # type: ignore[no-untyped-def]
    """:func:`_lay_out` compiled on first use (numba is imported here, not when the store
    is: readers such as the dashboard never load it)."""
    if not _COMPILED:
        from numba import njit

        _COMPILED.append(njit(cache=True, nogil=True)(_lay_out))
    return _COMPILED[0]
