"""Checks a stream run makes before it starts (before Prefect's server, before any worker),
so a broken MLflow database or checkpoint is one line with its remedy, not a failure deep
inside a worker process followed by pages of tracebacks."""

from __future__ import annotations

from pathlib import Path

from pipeline.mlflow_store import check_readable
from pipeline.stream.checkpoint import CheckpointStore
from pipeline.stream.config import StreamPaths


def preflight(data_dir: Path, topic: str, group: str, partitions: int, tracking_uri: str) -> None:
    """Raise the one-line error a run would meet: a tracking store that is not an MLflow
    database (RegistryError; a missing one is only waited for), an unreadable checkpoint
    (CheckpointCorruptError, naming the file and how to recover)."""
    check_readable(tracking_uri)
    checkpoints = CheckpointStore(StreamPaths(Path(data_dir), group).checkpoints, topic, group)
    for p in range(partitions):
        checkpoints.read(p)
