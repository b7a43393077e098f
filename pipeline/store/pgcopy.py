"""PostgreSQL binary ``COPY`` payloads, built column-wise with numpy.

The text format makes both sides work per value: the client formats every float and
timestamp as text (``repr`` of a float is ~1 us), the server parses it back. The binary
format (https://www.postgresql.org/docs/current/sql-copy.html, "Binary Format") carries
floats and timestamps as fixed-width big-endian numbers, so they are written here as
whole numpy columns and the server copies them in. On a 10,000-row scores batch this
took the server's ``COPY`` from ~13-20 ms to ~7-9 ms of CPU.

Layout: an 11-byte signature, two int32s (flags, extension length), then per row an
int16 field count and per field an int32 byte length (-1: NULL) followed by that many
bytes; an int16 -1 ends the data. Every row has the same fields, so each field's byte
offset in the buffer is a cumulative sum of lengths, and a column is written with one
fancy-indexed assignment: fixed-width columns as ``(rows, width)`` byte views,
variable-width (text) columns as one concatenated UTF-8 blob scattered to their offsets.
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

    def write(self, buf: np.ndarray, at: np.ndarray) -> None:
        """Write each row's length word and value at byte offsets ``at`` (one per row)."""
        lengths = self.sizes.astype(">i4").view(np.uint8).reshape(-1, 4)
        present = self.sizes >= 0
        if self.fixed is not None:
            if present.all():  # length and value adjacent: one scatter
                _scatter(buf, at, np.concatenate([lengths, self.fixed], axis=1))
                return
            _scatter(buf, at, lengths)
            _scatter(buf, at[present] + 4, self.fixed[present])
            return
        assert self.blob is not None
        _scatter(buf, at, lengths)
        starts = at[present] + 4
        lens = self.sizes[present]
        if self.prefix is not None:
            buf[starts] = self.prefix
            starts = starts + 1
            lens = lens - 1
        if not len(self.blob):
            return
        before = np.cumsum(lens) - lens  # each value's offset inside the blob
        buf[np.repeat(starts - before, lens) + np.arange(len(self.blob))] = self.blob


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
    field = [4 + np.maximum(c.sizes, 0) for c in columns]  # length word + value
    row = 2 + sum(field, np.zeros(n, dtype=np.int64))  # field count + fields
    lead = len(SIGNATURE) if head else 0
    start = lead + np.cumsum(row) - row
    buf = np.empty(lead + int(row.sum()) + (2 if tail else 0), dtype=np.uint8)
    buf[:lead] = np.frombuffer(SIGNATURE, dtype=np.uint8)[:lead]
    if tail:
        buf[-2:] = 0xFF  # int16 -1: end of data
    _scatter(buf, start, np.full(n, k, dtype=">i2").view(np.uint8).reshape(-1, 2))
    at = start + 2
    for col, width in zip(columns, field, strict=True):
        col.write(buf, at)
        at += width
    return buf.tobytes()


def _scatter(buf: np.ndarray, at: np.ndarray, rows: np.ndarray) -> None:
    """``rows[i]`` (a ``(n, width)`` uint8 block) into ``buf`` from offset ``at[i]``: one
    1-D assignment per byte column (2.5x faster than one 2-D fancy index)."""
    for j in range(rows.shape[1]):
        buf[at + j] = rows[:, j]
