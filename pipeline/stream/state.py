"""Where a stream worker keeps what it must not lose: the small interface.

A worker needs two things per partition, whichever backend holds them:

* a **lease** (:class:`Lease`): exclusive ownership of the partition while it processes
  it; ``try_acquire`` takes it if nobody else holds it, ``release`` hands it back;
* a **checkpoint backend** (:class:`CheckpointBackend`): the partition's feature-state
  snapshot and the offsets it covers, read at takeover and replaced atomically.

Two implementations:

* files (the embedded default): :class:`pipeline.stream.checkpoint.CheckpointStore` plus
  :class:`pipeline.stream.checkpoint.PartitionLease` (an ``flock``) -- one host only;
  :func:`file_backend` puts them behind this interface unchanged;
* PostgreSQL: :class:`pipeline.stream.state_pg.PgStateBackend` -- several hosts; leases
  carry an epoch and a checkpoint write by a stale owner is refused
  (:class:`~pipeline.errors.FencedError`).

The worker takes a backend (``Worker(..., state=...)``; files under the data dir when
none is given); ``churn stream-worker`` (:mod:`pipeline.stream.host`) passes the
PostgreSQL one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pipeline.stream.checkpoint import CheckpointMeta, CheckpointStore, PartitionLease


@runtime_checkable
class Lease(Protocol):
    """Exclusive ownership of one partition by one process."""

    partition: int

    @property
    def held(self) -> bool: ...

    def try_acquire(self) -> bool: ...

    def release(self) -> None: ...


@runtime_checkable
class CheckpointBackend(Protocol):
    """Per-partition checkpoints of one consumer group (``topic``, ``group``)."""

    topic: str
    group: str

    def lease(self, partition: int) -> Lease: ...

    def read(self, partition: int) -> Any: ...  # has .meta, .state, .path; None if none yet

    def write(self, meta: CheckpointMeta, state: bytes) -> Any: ...

    def delete(self, partition: int) -> None: ...

    def clean_temp(self, partition: int) -> None: ...


class FileCheckpointBackend(CheckpointStore):
    """The file checkpoints and ``flock`` leases, behind :class:`CheckpointBackend`."""

    def lease(self, partition: int) -> PartitionLease:
        return PartitionLease(self.dir, partition)


def file_backend(directory: Path, topic: str, group: str) -> FileCheckpointBackend:
    """The embedded default: checkpoints and lock files under ``directory``."""
    return FileCheckpointBackend(directory, topic, group)
