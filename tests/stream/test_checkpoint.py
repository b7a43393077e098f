"""Checkpoints: atomic, checked, and an unreadable one is a clear error naming the file."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pipeline.errors import CheckpointCorruptError
from pipeline.features.state import FeatureState
from pipeline.stream.checkpoint import CheckpointMeta, CheckpointStore, PartitionLease


def _meta(p: int = 1, offset: int = 42) -> CheckpointMeta:
    return CheckpointMeta(
        topic="events",
        group="g",
        partition=p,
        next_offset=offset,
        dlq_end=3,
        created_at="2026-01-01T00:00:00+00:00",
        model_version="7",
    )


def test_roundtrip_keeps_offsets_and_state_bytes(tmp_path) -> None:
    store = CheckpointStore(tmp_path, "events", "g")
    state = FeatureState().snapshot()
    path = store.write(_meta(), state)
    ck = store.read(1)
    assert ck is not None and ck.path == path
    assert ck.meta == _meta() and ck.state == state
    assert store.read(0) is None  # no checkpoint yet: start from the log's start
    assert [p.name for p in tmp_path.iterdir()] == ["partition-1.ckpt"]  # no temp file left


def test_rewrite_replaces_atomically(tmp_path) -> None:
    store = CheckpointStore(tmp_path, "events", "g")
    store.write(_meta(offset=1), b"old")
    store.write(_meta(offset=2), b"new")
    ck = store.read(1)
    assert ck.meta.next_offset == 2 and ck.state == b"new"


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_corrupt_file_names_the_file_and_the_recovery(tmp_path, damage) -> None:
    store = CheckpointStore(tmp_path, "events", "g")
    path = store.write(_meta(), FeatureState().snapshot())
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
    elif damage == "truncate":
        raw = raw[: len(raw) // 3]
    else:
        raw = bytearray(b"not a checkpoint at all")
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointCorruptError) as exc:
        store.read(1)
    msg = str(exc.value)
    assert str(path) in msg and "partition 1" in msg
    assert "delete it" in msg and "replaying what its log still holds" in msg and "restore the file from a backup" in msg and "not skipped silently" in msg


def test_checkpoint_of_another_group_is_refused(tmp_path) -> None:
    CheckpointStore(tmp_path, "events", "other").write(replace(_meta(), group="other"), b"x")
    with pytest.raises(CheckpointCorruptError, match="group 'g'"):
        CheckpointStore(tmp_path, "events", "g").read(1)


def test_lease_is_exclusive_until_released(tmp_path) -> None:
    a, b = PartitionLease(tmp_path, 0), PartitionLease(tmp_path, 0)
    assert a.try_acquire() and a.held
    assert not b.try_acquire()  # another holder (flock per open file, even in one process)
    assert PartitionLease(tmp_path, 1).try_acquire()  # other partitions are independent
    a.release()
    assert b.try_acquire()
    b.release()
