"""Score history as columnar segments: one row per write, its points as packed columns.

Why (issue 17): keyed history -- one B-tree row per (bucket, user) point, upserted --
cost ~3 us per point in SQLite alone (a B-tree insert with a text key per point, plus
the pages it dirties in the commit) and a second ``INSERT .. SELECT .. ON CONFLICT`` on
PostgreSQL: ~40 % of a 10,000-row scores+history write. A flush's points now go to the
store as **one** row of ``score_history_segments`` in the same transaction as the
scores (exactly-once holds: both commit or neither), whose ``payload`` packs the points
column-wise (:func:`encode`): ~1 ms per 10,000 points, whatever the table holds.

Readers (:func:`resolve`) decode the segments and keep, per (bucket, user), the point
with the newest ``time``, the later segment (``seq``) on a tie: exactly the row the
keyed upsert kept (it replaced a point by a newer one, or by an equal-time one that
differs). A replayed flush appends an identical segment; it resolves to the same
points. ``seq`` is the write order: SQLite assigns ``max + 1`` under its write lock;
PostgreSQL writers take a transaction-scoped advisory lock before appending, so the
order of ``seq`` is the order of the commits.

Read cost: a read decodes the segments it cannot skip (``since`` skips by
``time_max``; a read of a few users by ``user_min``/``user_max``). A flush's segment
spans every user range, so writers compact as they go
(:meth:`pipeline.store.Store.maybe_compact_history`): every 64 flush segments are merged
into a *run* of resolved points sorted by user, 20,000 per segment, and once 8 runs
exist everything is merged into one. A one-user read then decodes at most one segment
per run plus the flush segments since the last run (~1 ms per compacted segment on
SQLite in ``benchmarks/bench_store.py``), however long the store has run; reads are
correct at every step. ``prune`` rewrites the segments that hold older points.

Payload (little-endian)::

    b"CHS1" | uint32 header length | header (JSON: n, user dtype, model versions)
    | users (n fixed-width ASCII bytes, or UTF-32 if any id is not ASCII)
    | buckets int64 us | times int64 us | risks float64 | version codes uint16

User ids never contain NUL (validated; PostgreSQL text cannot hold it either), so the
fixed-width arrays round-trip exactly.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import StoreError

MAGIC = b"CHS1"
_HEAD = struct.Struct("<I")


@dataclass(slots=True)
class Points:
    """History points column-wise: users (numpy fixed-width str/bytes), bucket and time as
    int64 microseconds since the epoch (UTC), risk float64, model version per point."""

    users: np.ndarray
    buckets: np.ndarray
    times: np.ndarray
    risks: np.ndarray
    versions: np.ndarray  # object array of str

    def __len__(self) -> int:
        return len(self.users)

    def take(self, mask: np.ndarray) -> Points:
        return Points(self.users[mask], self.buckets[mask], self.times[mask], self.risks[mask],
                      self.versions[mask])  # fmt: skip


def user_array(users: Sequence[str] | np.ndarray) -> np.ndarray:
    """User ids as a compact fixed-width array: ASCII bytes (``S``, same order as the
    ids' code points) when every id is ASCII, else numpy unicode (``U``)."""
    if isinstance(users, np.ndarray) and users.dtype.kind == "S":
        return users
    if isinstance(users, np.ndarray) and users.dtype.kind == "U":
        try:
            return users.astype("S")
        except UnicodeEncodeError:
            return users
    try:
        return np.asarray(users, dtype="S")  # C-speed; raises on the first non-ASCII id
    except UnicodeEncodeError:
        return np.asarray(users, dtype=str)


def encode(
    users: np.ndarray,
    buckets_us: np.ndarray,
    times_us: np.ndarray,
    risks: np.ndarray,
    versions: Sequence[str] | np.ndarray,
) -> bytes:
    """Pack ``n`` points (``users`` from :func:`user_array`) into one payload."""
    n = len(users)
    uniq: list[str] = sorted(set(versions)) if n else []
    if len(uniq) > 65_535:
        raise StoreError(f"{len(uniq)} model versions in one history write: at most 65,535")
    if len(uniq) <= 1:
        codes = np.zeros(n, dtype="<u2")
    else:
        index = {v: i for i, v in enumerate(uniq)}
        codes = np.fromiter(map(index.__getitem__, versions), dtype="<u2", count=n)
    udt = users.dtype.newbyteorder("<") if users.dtype.kind == "U" else users.dtype
    header = json.dumps({"n": n, "users": udt.str, "versions": uniq}).encode()
    return b"".join((
        MAGIC, _HEAD.pack(len(header)), header,
        np.ascontiguousarray(users, dtype=udt).tobytes(),
        np.ascontiguousarray(buckets_us, dtype="<i8").tobytes(),
        np.ascontiguousarray(times_us, dtype="<i8").tobytes(),
        np.ascontiguousarray(risks, dtype="<f8").tobytes(),
        codes.tobytes(),
    ))  # fmt: skip


def decode(payload: bytes | memoryview) -> Points:
    """The points of one payload (numpy views of it where possible)."""
    buf = memoryview(payload)
    if bytes(buf[:4]) != MAGIC:
        raise StoreError("score history segment has an unknown format: was it written by a newer version?")
    try:
        (hlen,) = _HEAD.unpack_from(buf, 4)
        head = json.loads(bytes(buf[8 : 8 + hlen]))
        n, udt = int(head["n"]), np.dtype(head["users"])
        names = np.array(head["versions"] or [""], dtype=object)
    except (struct.error, ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise StoreError(f"score history segment is corrupt (unreadable header: {exc})") from None
    off = 8 + hlen
    if len(buf) != off + n * (udt.itemsize + 26):  # users + 3 x 8 (buckets, times, risks) + 2 (codes)
        raise StoreError(f"score history segment is corrupt: {len(buf)} bytes for {n} points "
                         f"(expected {off + n * (udt.itemsize + 26)})")
    users = np.frombuffer(buf, dtype=udt, count=n, offset=off)
    off += n * udt.itemsize
    buckets = np.frombuffer(buf, dtype="<i8", count=n, offset=off)
    times = np.frombuffer(buf, dtype="<i8", count=n, offset=off + 8 * n)
    risks = np.frombuffer(buf, dtype="<f8", count=n, offset=off + 16 * n)
    codes = np.frombuffer(buf, dtype="<u2", count=n, offset=off + 24 * n)
    if n and int(codes.max()) >= len(names):
        raise StoreError(f"score history segment is corrupt: model version code {int(codes.max())} of "
                         f"{len(names)} versions")
    return Points(users, buckets, times, risks, names[codes])


def concat(parts: Sequence[Points], seqs: Sequence[int]) -> tuple[Points, np.ndarray]:
    """Points of several segments as one, and each point's segment ``seq``."""
    if not parts:
        empty = np.empty(0, dtype="int64")
        return Points(np.empty(0, dtype="S1"), empty, empty, np.empty(0), np.empty(0, object)), empty
    kinds = {p.users.dtype.kind for p in parts}
    users = [p.users.astype(str) for p in parts] if kinds == {"S", "U"} else [p.users for p in parts]
    seq = np.repeat(np.asarray(seqs, dtype="int64"), [len(p) for p in parts])
    return Points(
        np.concatenate(users),
        np.concatenate([p.buckets for p in parts]),
        np.concatenate([p.times for p in parts]),
        np.concatenate([p.risks for p in parts]),
        np.concatenate([p.versions for p in parts]),
    ), seq


def newest(points: Points, seq: np.ndarray) -> np.ndarray:
    """Indices of the point each (bucket, user) keeps: the newest ``time``, then the
    highest ``seq`` (the later write), then the later position."""
    n = len(points)
    if n == 0:
        return np.empty(0, dtype="int64")
    order = np.lexsort((np.arange(n), seq, points.times, points.users, points.buckets))
    u, b = points.users[order], points.buckets[order]
    last = np.empty(n, dtype=bool)
    last[-1] = True
    last[:-1] = (u[1:] != u[:-1]) | (b[1:] != b[:-1])
    return order[last]


def resolve(points: Points, seq: np.ndarray) -> Points:
    """The resolved points (one per (bucket, user)), by time then user id."""
    kept = points.take(newest(points, seq))
    order = np.lexsort((kept.users, kept.times))
    return kept.take(order)


def isin(users: np.ndarray, wanted: Sequence[str]) -> np.ndarray:
    """Mask of ``users`` (a segment's fixed-width array) that are in ``wanted`` (str)."""
    if users.dtype.kind == "S":
        ascii_ids = [u for u in wanted if u.isascii()]
        return np.isin(users, np.array(ascii_ids, dtype="S")) if ascii_ids else np.zeros(len(users), bool)
    return np.isin(users, np.array(list(wanted), dtype=str))


def row(points: Points, codec: Any) -> dict[str, Any]:
    """The ``score_history_segments`` row of ``points`` (not empty): counts, bounds
    (``codec``: the store's ``TimeCodec``) and payload. ``user_min``/``user_max`` (code
    point order) let a read of a few users skip segments of other users' ranges (a
    compacted store's segments hold narrow ranges; a flush's spans everyone)."""
    users = points.users
    if len(users) > 1 and not bool((users[1:] >= users[:-1]).all()):
        users = np.sort(users)
    lo, hi = users[0], users[-1]
    if users.dtype.kind == "S":
        lo, hi = lo.decode(), hi.decode()
    b, t = points.buckets, points.times
    bounds = codec.many(np.array([b.min(), b.max(), t.min(), t.max()], "int64").view("datetime64[us]"))
    payload = encode(points.users, b, t, points.risks, points.versions)
    return {"points": len(points), "user_min": str(lo), "user_max": str(hi),
            "bucket_min": bounds[0], "bucket_max": bounds[1], "time_min": bounds[2],
            "time_max": bounds[3], "payload": payload}  # fmt: skip
