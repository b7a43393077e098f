"""Shared helpers for the stream tests: run a worker to the end, read back what it left."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

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


def history(store) -> pd.DataFrame:
    """Every ``score_history`` point (one per user per event-time interval), in key order."""
    return store.score_history().sort_values(["user_id", "time"]).reset_index(drop=True)


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


def run_in_thread(sup: Any, **kw: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """``sup.run(**kw)`` in a thread; ``out`` gets its "summary" or the "error" it raised."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["summary"] = sup.run(**kw)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            out["error"] = exc

    th = threading.Thread(target=target)
    th.start()
    return th, out


def sigkill_workers_mid_run(sup: Any, th: threading.Thread, log: PartitionLog, group: str,
                            end: Callable[[int], int], kills: int, seed: int, within_s: float = 120.0) -> int:  # fmt: skip
    """SIGKILL up to ``kills`` worker processes of a running supervisor, each at a random
    moment once it is past its start-up (its partitions' committed offsets moved) and
    still behind ``end(partition)``; returns how many it killed."""
    rng = random.Random(seed)
    done = 0
    seen: dict[int, dict[int, int]] = {}  # pid -> committed offsets when first seen
    deadline = time.monotonic() + within_s
    while done < kills and th.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
        committed = log.committed(group)
        for proc in list(sup.procs.values()):
            pid = proc.popen.pid
            if proc.popen.poll() is not None:
                continue
            mine = sup.assignment.get(proc.worker_id, ())
            before = seen.setdefault(pid, {p: committed.get(p, 0) for p in mine})
            progressing = any(committed.get(p, 0) > before.get(p, 0) for p in mine)
            lagging = any(committed.get(p, 0) < end(p) for p in mine)
            if progressing and lagging:  # past its startup, mid-run: kill it at a random moment
                time.sleep(rng.uniform(0.0, 0.6))
                if proc.popen.poll() is not None:  # it finished meanwhile: pick again
                    break
                proc.popen.send_signal(signal.SIGKILL)  # never a reaped (reused) pid
                done += 1
                break
    return done
