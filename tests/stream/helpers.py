"""Shared helpers for the stream tests: run a worker to the end, read back what it left."""

from __future__ import annotations

import pandas as pd

from pipeline.log.base import PartitionLog
from pipeline.stream.checkpoint import CheckpointStore
from pipeline.stream.config import StreamPaths

SCORE_COLUMNS = [
    "user_id",
    "risk",
    "model_version",
    "features_time",
    "reasons",
    "plan",
    "monthly_revenue",
    "partition",
    "active",
]


def scores(store) -> pd.DataFrame:
    df = store.current_scores(top_k=None, active_only=False)[SCORE_COLUMNS]  # cancelled too
    return df.sort_values("user_id").reset_index(drop=True)


def states(paths: StreamPaths, log: PartitionLog) -> dict[int, tuple[int, bytes]]:
    """Per partition: (checkpointed next offset, feature-state snapshot bytes)."""
    ck = CheckpointStore(paths.checkpoints, log.name, paths.group)
    out = {}
    for p in range(log.num_partitions):
        c = ck.read(p)
        out[p] = (c.meta.next_offset, c.state)
    return out


def crash(worker) -> None:
    """What SIGKILL does to a worker, in-process: pending writes and checkpoints are lost,
    its leases are dropped (the kernel drops a dead process's flocks)."""
    worker.writer.close(flush=False)
    for part in worker.parts.values():
        part.lease.release()
    worker.parts.clear()


def append_bad_events(log: PartitionLog, partition: int) -> list[bytes]:
    bad = [
        b'{"type": "session", "user_id": "u1"',
        b'{"type":"teleport","event_id":"x","user_id":"u1",'
        b'"ts":"2026-01-02T00:00:00Z","schema_version":1}',
        b"\xff\xfe not utf-8",
    ]
    log.append(partition, bad)
    return bad
