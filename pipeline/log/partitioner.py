"""Kafka's default key partitioner, bit for bit: ``toPositive(murmur2(key)) % N``.

The file backend and a real Kafka topic must route every user to the same partition,
so this is a port of ``org.apache.kafka.common.utils.Utils.murmur2`` (seed
``0x9747b28c``, signed 32-bit result like Java) and ``Utils.toPositive``
(``& 0x7fffffff``, *not* ``abs``), as used by ``BuiltInPartitioner.partitionForKey``.

Routing is on the producer's hot path (1M events route 1M keys, but user ids repeat),
so :func:`partition_for` is memoised and :func:`partition_for_many` hashes the distinct
keys of a batch with numpy, vectorised over keys of equal length.

>>> murmur2(b"21")
-973932308
>>> partition_for(b"21", 4)
0
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of ``data`` as a signed 32-bit int (Java ``int`` semantics)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(
            f"murmur2 needs bytes, got {type(data).__name__}; encode keys (user_id.encode())"
        )
    length = len(data)
    h = (SEED ^ length) & _MASK
    n4 = length & ~3
    for i in range(0, n4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest:  # Java's fall-through switch over the last 1-3 bytes
        if rest == 3:
            h ^= data[n4 + 2] << 16
        if rest >= 2:
            h ^= data[n4 + 1] << 8
        h ^= data[n4]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def to_positive(number: int) -> int:
    """Kafka's ``Utils.toPositive``: clear the sign bit (``abs`` would differ for MIN_VALUE)."""
    return number & 0x7FFFFFFF


@lru_cache(maxsize=1 << 17)
def partition_for(key: bytes, n: int) -> int:
    """Partition of ``key`` in a topic of ``n`` partitions (Kafka's keyed default)."""
    if n < 1:
        raise ValueError(f"num_partitions must be >= 1, got {n}")
    return (murmur2(key) & 0x7FFFFFFF) % n


def murmur2_many(keys: Sequence[bytes]) -> np.ndarray:
    """murmur2 of each key (int32 array), vectorised over keys of equal length.

    uint32 numpy arithmetic wraps modulo 2**32 exactly like Java's ``int`` multiply.
    """
    out = np.empty(len(keys), dtype=np.int32)
    by_len: dict[int, list[int]] = {}
    for i, k in enumerate(keys):
        by_len.setdefault(len(k), []).append(i)
    m = np.uint32(_M)
    with np.errstate(over="ignore"):
        for length, idx in by_len.items():
            raw = np.frombuffer(b"".join(keys[i] for i in idx), dtype=np.uint8)
            mat = raw.reshape(len(idx), length).astype(np.uint32)
            h = np.full(len(idx), (SEED ^ length) & _MASK, dtype=np.uint32)
            n4 = length & ~3
            for i in range(0, n4, 4):
                k = mat[:, i] | (mat[:, i + 1] << 8) | (mat[:, i + 2] << 16) | (mat[:, i + 3] << 24)
                k = k * m
                k ^= k >> np.uint32(24)
                k = k * m
                h = (h * m) ^ k
            rest = length & 3
            if rest:
                if rest == 3:
                    h ^= mat[:, n4 + 2] << 16
                if rest >= 2:
                    h ^= mat[:, n4 + 1] << 8
                h ^= mat[:, n4]
                h = h * m
            h ^= h >> np.uint32(13)
            h = h * m
            h ^= h >> np.uint32(15)
            out[idx] = h.view(np.int32)
    return out


def partition_for_many(keys: Iterable[bytes], n: int) -> np.ndarray:
    """Partitions (int64 array) of many keys; hashes each distinct key once."""
    if n < 1:
        raise ValueError(f"num_partitions must be >= 1, got {n}")
    keys = keys if isinstance(keys, list) else list(keys)
    distinct = list(dict.fromkeys(keys))
    parts = (murmur2_many(distinct).astype(np.int64) & 0x7FFFFFFF) % n
    lookup = dict(zip(distinct, parts.tolist(), strict=True))
    return np.fromiter(map(lookup.__getitem__, keys), dtype=np.int64, count=len(keys))
