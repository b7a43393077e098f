"""Checks a stream run makes before it starts (before Prefect's server, before any worker),
so a broken MLflow database or checkpoint is one line with its remedy, not a failure deep
inside a worker process followed by pages of tracebacks."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.mlflow_store import check_readable
from pipeline.stream.checkpoint import CheckpointStore
from pipeline.stream.config import StreamPaths


def _writable(root: Path) -> None:
    """The group's directory can be created and written (its lock, checkpoints, spool):
    an ``OSError`` (read-only or full disk, permissions) here is the CLI's one line, where
    inside the flow it came after a Prefect task traceback."""
    root.mkdir(parents=True, exist_ok=True)
    probe = root / f".write-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
    finally:
        probe.unlink(missing_ok=True)


def preflight(data_dir: Path, topic: str, group: str, partitions: int, tracking_uri: str) -> None:
    """Raise the one-line error a run would meet: a tracking store that is not an MLflow
    database (RegistryError; a missing one is only waited for), an unreadable checkpoint
    (CheckpointCorruptError, naming the file and how to recover)."""
    check_readable(tracking_uri)
    _writable(StreamPaths(Path(data_dir), group).root)
    checkpoints = CheckpointStore(StreamPaths(Path(data_dir), group).checkpoints, topic, group)
    for p in range(partitions):
        checkpoints.read(p)
