"""Byte format of a feature-state snapshot (what the stream's checkpoints store).

Layout: ``MAGIC | u64 header length | msgpack header | array bytes ... | u32 crc32``.
The header holds the format, engine and feature-set versions, the state's scalars, the
user-id table (slot order) and each array's name, dtype and shape; arrays follow in
header order as raw little-endian bytes. Everything is deterministic (msgpack keeps key
order, no timestamps), so ``dump(load(b)) == b``. The CRC catches torn or corrupted
checkpoint files; a version mismatch is refused with the remedy (replay the log).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import msgspec
import numpy as np

from pipeline.errors import FeatureError
from pipeline.features.registry import ENGINE_VERSION, FEATURE_SET_VERSION

MAGIC = b"CHURNFS\x01"
FORMAT = 1


def dump(
    meta: Mapping[str, Any], users: list[str], arrays: Mapping[str, np.ndarray], feature_set: str = FEATURE_SET_VERSION
) -> bytes:
    """``feature_set``: the topic's feature-spec version (the simulator's: ``FEATURE_SET_VERSION``)."""
    layout = []
    chunks = []
    for name, arr in arrays.items():
        le = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        layout.append([name, le.dtype.str, list(le.shape)])
        chunks.append(memoryview(le).cast("B") if le.size else b"")  # no copy until the one join
    header = msgspec.msgpack.encode({
        "format": FORMAT, "engine": ENGINE_VERSION, "feature_set": feature_set,
        "meta": dict(meta), "users": users, "arrays": layout,
    })
    parts = [MAGIC, len(header).to_bytes(8, "little"), header, *chunks]
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    return b"".join([*parts, crc.to_bytes(4, "little")])  # the state's one copy


def load(
    blob: bytes, expected: Mapping[str, str], feature_set: str = FEATURE_SET_VERSION
) -> tuple[dict[str, Any], list[str], dict[str, np.ndarray]]:
    """Parse and check a snapshot; ``expected`` maps array name -> dtype name, ``feature_set``
    is the feature-spec version the snapshot must have been taken with."""
    if len(blob) < len(MAGIC) + 12 or not blob.startswith(MAGIC):
        raise FeatureError("not a feature-state snapshot (bad magic); the checkpoint is corrupt or from another tool")
    body, crc = memoryview(blob)[:-4], int.from_bytes(blob[-4:], "little")
    if zlib.crc32(body) != crc:
        raise FeatureError("feature-state snapshot fails its checksum (torn or corrupted); rebuild it by replaying the log")
    hlen = int.from_bytes(blob[len(MAGIC) : len(MAGIC) + 8], "little")
    start = len(MAGIC) + 8
    try:
        header = msgspec.msgpack.decode(body[start : start + hlen])
    except msgspec.DecodeError as exc:
        raise FeatureError(f"feature-state snapshot header is unreadable ({exc})") from None
    if header.get("format") != FORMAT or header.get("engine") != ENGINE_VERSION:
        raise FeatureError(
            f"snapshot was written by engine {header.get('engine')} (format {header.get('format')}), "
            f"this is engine {ENGINE_VERSION}; rebuild the state by replaying the log"
        )
    if header.get("feature_set") != feature_set:
        raise FeatureError(
            f"snapshot has feature set {header.get('feature_set')}, this engine computes "
            f"{feature_set} (the topic's feature spec); rebuild the state by replaying the log"
        )
    names = [a[0] for a in header["arrays"]]
    if sorted(names) != sorted(expected):
        raise FeatureError(f"snapshot holds arrays {names}, expected {sorted(expected)}; the snapshot is corrupt")
    arrays: dict[str, np.ndarray] = {}
    pos = start + hlen
    for name, dtype, shape in header["arrays"]:
        dt = np.dtype(dtype)
        if dt.newbyteorder("=") != np.dtype(expected[name]):
            raise FeatureError(f"snapshot array {name!r} has dtype {dtype}, expected {expected[name]}")
        size = int(np.prod(shape)) * dt.itemsize
        if pos + size > len(body):
            raise FeatureError(f"snapshot array {name!r} is truncated; the snapshot is corrupt")
        arrays[name] = np.frombuffer(body[pos : pos + size], dtype=dt).reshape(shape).astype(expected[name])
        pos += size
    if pos != len(body):
        raise FeatureError("snapshot has trailing bytes; the snapshot is corrupt")
    return header["meta"], header["users"], arrays
