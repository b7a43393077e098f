"""String ids -> dense slots, looked up a batch at a time in compiled code.

The feature state maps each user id to its slot (first-seen order). A Python dict does
it one id at a time through a chain of dependent memory reads (its index, its entry,
the stored key's characters to compare), and in the stream, where the state of 100,000
users is touched at random, each of those reads is a cache miss: profiling the stream
worker put the lookups at ~0.4-0.55 us an event (0.1 in isolation).

:class:`IdTable` keeps the same mapping as an open-addressing table of ``(hash, slot)``
pairs over the ids' UTF-8 bytes, with every id's bytes in one arena (slot order) for
the exact comparison. A batch is encoded once (one join and one encode for ASCII ids),
and one compiled loop probes every id. An entry (32 bytes, half a cache line) holds the
hash, the slot, the id's length and its first 16 bytes, so an id of up to 16 bytes costs
one memory read (a longer one also reads its arena bytes), and the reads of independent
ids overlap. A hit is an exact byte match, never a hash match alone; the hash starts
from a per-table random value, so ids cannot be chosen to collide.

Measured (25,000 ids of 8 bytes, fresh id strings in batches of 1,000, caches evicted
before each batch as the stream's other work evicts them): the dict 545-590 ns an id,
this table 105-130 (of which ~45 encoding the batch); with warm caches 60-110 vs 45-60.
In the stream worker (bench_stream's child, paired runs) the features stage went from
2.11-2.29 to 1.64-1.99 us an event.

It is an index over the state's ``user_ids`` and never state itself: it is rebuilt from
them on restore, so snapshots do not change.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import numpy as np

from pipeline.errors import FeatureError
from pipeline.features.jit import njit

_EMPTY = -1
_SLOT_MASK = (1 << 32) - 1
MAX_IDS = 1 << 31  # a slot and an id's length share one int64 in the table
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def encode_ids(ids: Sequence[str]) -> tuple[bytes, np.ndarray]:
    """The ids' UTF-8 bytes back to back and each id's end offset (int64).

    ASCII ids (the usual case) take one join and one encode for the whole batch; others
    are encoded one by one (``surrogatepass``: a decoded JSON string may hold a lone
    surrogate, and the encoding must still be one-to-one)."""
    joined = "".join(ids)
    if joined.isascii():
        return joined.encode("ascii"), np.cumsum(np.fromiter(map(len, ids), np.int64, len(ids)))
    parts = [u.encode("utf-8", "surrogatepass") for u in ids]
    return b"".join(parts), np.cumsum(np.fromiter(map(len, parts), np.int64, len(parts)))


@njit(cache=True, nogil=True)
def _hash(buf, lo, hi, seed):  # pragma: no cover - compiled
    """FNV-1a over the bytes from a per-table random start, then a 64-bit finaliser
    (MurmurHash3's) so that the low bits, which pick the bucket, depend on every byte."""
    h = _FNV_OFFSET ^ seed
    for k in range(lo, hi):
        h = (h ^ np.uint64(buf[k])) * _FNV_PRIME
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


@njit(cache=True, nogil=True)
def _same(buf, lo, hi, arena, a_lo, a_hi):  # pragma: no cover - compiled
    if hi - lo != a_hi - a_lo:
        return False
    for k in range(hi - lo):  # noqa: SIM110 - numba compiles a loop, not a generator
        if buf[lo + k] != arena[a_lo + k]:
            return False
    return True


@njit(cache=True, nogil=True)
def _word(buf, lo, hi):  # pragma: no cover - compiled
    """Up to 8 bytes ``buf[lo:hi]`` as one little-endian integer (0 past ``hi``)."""
    w = np.uint64(0)
    for k in range(min(hi - lo, 8)):
        w |= np.uint64(buf[lo + k]) << np.uint64(8 * k)
    return np.int64(w)


@njit(cache=True, nogil=True)
def _lookup(buf, ends, table, arena, offsets, seed, out):  # pragma: no cover - compiled
    """``out[i]``: the slot of id ``i`` (bytes ``buf[ends[i-1]:ends[i]]``), or -1.

    Two passes: every id's hash first, then the probes, so that the probes' memory reads
    (independent of each other) are in flight together. An entry holds the hash, the
    slot and the id's length, and its first 16 bytes: an id of up to 16 bytes is
    compared there; a longer one also against its arena bytes."""
    n = len(ends)
    mask = np.uint64(len(table) - 1)
    hashes = np.empty(n, np.uint64)
    lo = 0
    for i in range(n):
        hashes[i] = _hash(buf, lo, ends[i], seed)
        lo = ends[i]
    lo = 0
    for i in range(n):
        hi = ends[i]
        h = hashes[i]
        length = hi - lo
        w0 = _word(buf, lo, hi)
        w1 = _word(buf, lo + 8, hi) if length > 8 else np.int64(0)
        j = h & mask
        s = _EMPTY
        while True:
            packed = table[j, 1]
            if packed == _EMPTY:
                break
            cand = packed & _SLOT_MASK
            if (np.uint64(table[j, 0]) == h and (packed >> 32) == length and table[j, 2] == w0
                    and table[j, 3] == w1
                    and (length <= 16 or _same(buf, lo + 16, hi, arena, offsets[cand] + 16, offsets[cand + 1]))):
                s = cand
                break
            j = (j + np.uint64(1)) & mask
        out[i] = s
        lo = hi


@njit(cache=True, nogil=True)
def _insert(table, arena, offsets, seed, first, count):  # pragma: no cover - compiled
    """Enter slots ``first .. first + count - 1`` (their bytes already in the arena)."""
    mask = np.uint64(len(table) - 1)
    for s in range(first, first + count):
        lo, hi = offsets[s], offsets[s + 1]
        h = _hash(arena, lo, hi, seed)
        j = h & mask
        while table[j, 1] != _EMPTY:
            j = (j + np.uint64(1)) & mask
        table[j, 0] = np.int64(h)
        table[j, 1] = ((hi - lo) << 32) | s
        table[j, 2] = _word(arena, lo, hi)
        table[j, 3] = _word(arena, lo + 8, hi) if hi - lo > 8 else np.int64(0)


def _room(arr: np.ndarray, size: int) -> np.ndarray:
    """``arr``, or a copy at least ``size`` long (by doubling) if it is shorter."""
    if size <= len(arr):
        return arr
    grown = np.zeros(max(2 * len(arr), size), arr.dtype)
    grown[: len(arr)] = arr
    return grown


class IdTable:
    """Exact id -> slot lookups for slots ``0 .. len - 1`` (ids entered in slot order)."""

    def __init__(self, ids: Sequence[str] = ()) -> None:
        self._n = 0
        # a random start per table: ids cannot be chosen to collide (as Python salts str hashes)
        self._seed = np.uint64(secrets.randbits(64))
        self._table = np.full((16, 4), _EMPTY, np.int64)
        self._arena = np.zeros(64, np.uint8)
        self._offsets = np.zeros(17, np.int64)
        if ids:
            self.extend(ids)

    def __len__(self) -> int:
        return self._n

    def lookup(self, ids: Sequence[str]) -> np.ndarray:
        """Slot of each id (int64), -1 where the id was never entered."""
        out = np.empty(len(ids), np.int64)
        if len(ids):
            buf, ends = encode_ids(ids)
            _lookup(np.frombuffer(buf, np.uint8), ends, self._table, self._arena, self._offsets, self._seed, out)
        return out

    def extend(self, ids: Sequence[str]) -> None:
        """Enter ``ids`` (distinct, none entered yet) as the next slots, in order."""
        if not ids:
            return
        buf, ends = encode_ids(ids)
        n, m = self._n, len(ids)
        if n + m >= MAX_IDS:
            raise FeatureError(f"an id table holds at most {MAX_IDS - 1:,} ids (a partition's users); "
                               "spread the users over more partitions")
        self._offsets = _room(self._offsets, n + m + 1)
        base = int(self._offsets[n])
        self._arena = _room(self._arena, base + len(buf))
        self._arena[base : base + len(buf)] = np.frombuffer(buf, np.uint8)
        self._offsets[n + 1 : n + m + 1] = ends + base
        self._n = n + m
        if 2 * self._n > len(self._table):  # load factor <= 1/2: short probe runs
            size = len(self._table)
            while 2 * self._n > size:
                size *= 2
            self._table = np.full((size, 4), _EMPTY, np.int64)
            _insert(self._table, self._arena, self._offsets, self._seed, 0, self._n)
        else:
            _insert(self._table, self._arena, self._offsets, self._seed, n, m)
