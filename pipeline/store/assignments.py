"""Worker assignments: which worker owns which partitions, exclusively, plus heartbeats.

Two tables: ``workers`` (id, pid, host, generation, started/heartbeat times) and
``partition_owners`` (partition primary key -> worker), so the database itself refuses
two owners for one partition. The supervisor rebalances with
:meth:`Assignments.replace_assignments` (one transaction); workers call
:meth:`Assignments.heartbeat`, which also tells them what they own now (``None``: the
worker was removed and must stop).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from pipeline.errors import InvalidRowError, PartitionOwnedError
from pipeline.store import schema as s
from pipeline.store.rows import TimeCodec


class Assignments:
    """Mixin of :class:`pipeline.store.Store` (needs ``codec``, ``clock``, ``_insert``, ``_write``)."""

    codec: TimeCodec
    clock: Any
    _insert: Callable[..., Any]

    def _write(self) -> AbstractContextManager[Connection]:  # provided by Store
        raise NotImplementedError

    def set_assignment(
        self,
        worker_id: str,
        partitions: Iterable[int],
        *,
        pid: int | None = None,
        host: str | None = None,
        generation: int = 0,
    ) -> None:
        """Give ``worker_id`` exactly ``partitions`` (replacing its previous set).

        Raises ``PartitionOwnedError`` if another worker holds one of them: revoke it
        first (``set_assignment(other, ...)``) or use :meth:`replace_assignments`.
        """
        parts = _partitions(partitions)
        with self._write() as conn:
            self._assign(conn, worker_id, parts, pid, host, generation)

    def replace_assignments(
        self,
        assignment: Mapping[str, Iterable[int]],
        *,
        generation: int,
        pids: Mapping[str, int] | None = None,
    ) -> None:
        """Atomically replace the whole group's assignment (a rebalance); workers not in
        ``assignment`` are removed."""
        parts = {w: _partitions(p) for w, p in assignment.items()}
        seen: dict[int, str] = {}
        for w, ps in parts.items():
            for p in ps:
                if p in seen:
                    raise PartitionOwnedError(
                        f"partition {p} is given to both {seen[p]!r} and {w!r}: each partition "
                        "must have one owner (see pipeline.autoscale.assign)"
                    )
                seen[p] = w
        with self._write() as conn:
            conn.execute(delete(s.partition_owners))
            conn.execute(delete(s.workers).where(s.workers.c.worker_id.not_in(list(parts))))
            for w, ps in parts.items():
                self._assign(conn, w, ps, (pids or {}).get(w), None, generation)

    def _assign(
        self, conn: Connection, worker: str, parts: list[int], pid: int | None,
        host: str | None, generation: int,
    ) -> None:  # fmt: skip
        if not (isinstance(worker, str) and worker):
            raise InvalidRowError(f"worker id {worker!r}: use a non-empty string")
        now = self.codec.one(self.clock.now())
        row = {"worker_id": worker, "pid": pid, "host": host or socket.gethostname(),
               "generation": int(generation), "started_at": now, "heartbeat_at": now}  # fmt: skip
        ins = self._insert(s.workers)
        conn.execute(
            ins.on_conflict_do_update(
                index_elements=["worker_id"],
                set_={
                    "pid": func.coalesce(ins.excluded.pid, s.workers.c.pid),  # None: keep
                    **{c: ins.excluded[c] for c in ("host", "generation", "heartbeat_at")},
                },
            ),
            [row],
        )
        owners = s.partition_owners
        conn.execute(delete(owners).where(owners.c.worker_id == worker))
        if not parts:
            return
        taken = conn.execute(
            select(owners.c.partition, owners.c.worker_id).where(owners.c.partition.in_(parts))
        ).first()
        if taken is not None:
            raise PartitionOwnedError(
                f"partition {taken[0]} is owned by worker {taken[1]!r}; revoke it first "
                f"(set_assignment({taken[1]!r}, ...)) or use replace_assignments"
            )
        try:
            conn.execute(
                owners.insert(),
                [{"partition": p, "worker_id": worker, "assigned_at": now} for p in parts],
            )
        except IntegrityError as exc:  # a concurrent writer took one meanwhile
            raise PartitionOwnedError(
                f"partitions {parts} of worker {worker!r}: one was taken concurrently ({exc.orig})"
            ) from None

    def clear_assignment(self, worker_id: str) -> None:
        """Remove the worker and release its partitions."""
        with self._write() as conn:
            conn.execute(
                delete(s.partition_owners).where(s.partition_owners.c.worker_id == worker_id)
            )
            conn.execute(delete(s.workers).where(s.workers.c.worker_id == worker_id))

    def heartbeat(self, worker_id: str) -> tuple[int, ...] | None:
        """Stamp the worker alive; return the partitions it owns now (None: unknown worker,
        i.e. it was removed by a rebalance and must stop)."""
        now = self.codec.one(self.clock.now())
        with self._write() as conn:
            res = conn.execute(
                update(s.workers).where(s.workers.c.worker_id == worker_id).values(heartbeat_at=now)
            )
            if res.rowcount == 0:
                return None
            owned = conn.execute(
                select(s.partition_owners.c.partition)
                .where(s.partition_owners.c.worker_id == worker_id)
                .order_by(s.partition_owners.c.partition)
            )
            return tuple(int(r[0]) for r in owned)


def _partitions(partitions: Iterable[int]) -> list[int]:
    out = []
    for p in partitions:
        if isinstance(p, bool) or not isinstance(p, int | np.integer) or p < 0:
            raise InvalidRowError(f"partition {p!r}: partitions are ints >= 0")
        out.append(int(p))
    if len(set(out)) != len(out):
        raise InvalidRowError(f"partitions {out} repeat a partition")
    return sorted(out)
