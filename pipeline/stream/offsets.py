"""Keep a group's committed offsets and its stream checkpoints in agreement.

The stream resumes each partition from its checkpoint (feature state + next offset,
written together); the group's committed offsets are derived from it, for lag and
``churn lag``. Two ways to break that agreement, both handled here:

* **Rewinding or skipping a group** (``churn lag --reset-offsets``) moved only the
  committed offsets: the stream kept resuming from its checkpoints, did no work and
  showed a false lag forever. :func:`reset_group` moves both, and refuses while a
  worker holds one of the group's partitions.

  - ``earliest``: the checkpoints are deleted, so every partition is replayed from the
    log's start through an empty state (scores are rewritten idempotently);
  - ``latest``: each checkpoint keeps its feature state and resumes at the log end
    (the records in between are skipped, as asked). A partition without a checkpoint
    would be replayed from the start whatever its offset says, so that is refused.

* **A log shorter than the group's position** (a segment truncated or replaced outside
  the log): records the group consumed are gone, and new records written at the reused
  offsets would be skipped without a word. :func:`check_position` turns that into one
  line that names the partition and the remedy.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from pipeline.errors import StreamError
from pipeline.log.base import PartitionLog, ResetTo
from pipeline.log.lag import past_end_message
from pipeline.pidlock import holder_if_locked
from pipeline.stream.checkpoint import CheckpointStore, PartitionLease
from pipeline.stream.config import StreamPaths


class OffsetsPastEndError(StreamError):
    """A checkpoint or committed offset lies past the log end: the log lost records."""


def check_position(log: PartitionLog, group: str, partition: int, position: int) -> None:
    """Raise :class:`OffsetsPastEndError` if ``position`` lies past the partition's end."""
    end = log.end_offset(partition)
    if position > end:
        raise OffsetsPastEndError(past_end_message(log.name, group, partition, position, end))


def record_crc(value: bytes) -> int:
    """The fingerprint a checkpoint keeps of the last record it applied."""
    return zlib.crc32(value)


def check_resume(log: PartitionLog, group: str, partition: int, position: int, last_crc: int | None) -> None:
    """Refuse to resume at ``position`` if the log no longer holds what was applied before it:
    the position lies past the end, or the record just before it is not the one the
    checkpoint applied (``last_crc``): the log was cut and written again at the same
    offsets, which offsets alone cannot show."""
    check_position(log, group, partition, position)
    if last_crc is None or position <= log.start_offset(partition):
        return
    before = log.fetch(partition, position - 1, max_records=1)
    if before and record_crc(before[0].value) == last_crc:
        return
    raise OffsetsPastEndError(
        f"group {group!r} resumes at offset {position} of partition {partition} (topic {log.name!r}), "
        f"but the record at offset {position - 1} is not the one it applied there: the log was "
        "truncated or replaced and written again at the same offsets, so records would be "
        "skipped silently, and nothing was. Restore the partition's segments from a backup, or "
        f"rebuild its features from what the log holds now: `churn lag --group {group} "
        "--reset-offsets earliest`"
    )


def checkpoint_problem(log: PartitionLog, data_dir: Path, group: str) -> str | None:
    """For ``churn lag``: the first stream checkpoint of ``group`` that cannot resume on this
    log (see :func:`check_resume`), as one line; None if all can (or there are none)."""
    store = CheckpointStore(StreamPaths(Path(data_dir), group).checkpoints, log.name, group)
    for p in range(log.num_partitions):
        try:
            ck = store.read(p)
            if ck is not None:
                check_resume(log, group, p, ck.meta.next_offset, ck.meta.last_crc)
        except StreamError as exc:
            return str(exc)
    return None


def checkpoints_resume(log: PartitionLog, data_dir: Path, group: str, partitions: list[int]) -> dict[int, int] | None:
    """For ``churn lag`` when committed offsets lie past the log end: the offsets the stream's
    checkpoints of ``partitions`` resume at, if every one has a checkpoint that can resume on
    this log (then the stream commits those offsets itself on start: nothing is lost); else
    None (the committed offsets are the only record: the past-end message stands)."""
    store = CheckpointStore(StreamPaths(Path(data_dir), group).checkpoints, log.name, group)
    out = {}
    for p in partitions:
        try:
            ck = store.read(p)
            if ck is None:
                return None
            check_resume(log, group, p, ck.meta.next_offset, ck.meta.last_crc)
        except StreamError:
            return None
        out[p] = ck.meta.next_offset
    return out


@dataclass(frozen=True)
class ResetResult:
    to: str
    offsets: dict[int, int]
    checkpoints_deleted: tuple[int, ...] = ()
    checkpoints_moved: tuple[int, ...] = ()

    def describe(self, group: str) -> str:
        line = f"group {group!r} reset to {self.to}: {self.offsets}"
        if self.checkpoints_deleted:
            line += (
                f"; deleted the stream checkpoints of partitions {list(self.checkpoints_deleted)} "
                "(their features are rebuilt by replaying the log from its start)"
            )
        if self.checkpoints_moved:
            line += (
                f"; the stream checkpoints of partitions {list(self.checkpoints_moved)} now resume "
                "at the log end (features kept; the records in between are skipped)"
            )
        return line


def reset_group(
    log: PartitionLog,
    data_dir: Path,
    group: str,
    to: ResetTo,
    when: datetime,
    dlq: PartitionLog | None = None,
) -> ResetResult:
    """Reset the group's committed offsets *and* its stream checkpoints to ``to``.

    Refused (:class:`StreamError`, nothing changed) while a stream worker holds one of
    the group's partitions or its supervisor runs. ``dlq`` is the dead-letter topic (for ``latest``: the
    moved checkpoints record its current end, so no old dead letter is mistaken for
    one of the new records); by default the topic's ``<topic>.dlq``.
    """
    if to not in ("earliest", "latest"):
        raise StreamError(f"reset to {to!r}: use 'earliest' or 'latest'")
    paths = StreamPaths(Path(data_dir), group)
    store = CheckpointStore(paths.checkpoints, log.name, group)
    present = [p for p in range(log.num_partitions) if store.path(p).exists()]
    if not present:  # not a stream group (or never checkpointed): offsets only
        return ResetResult(to, log.reset_offsets(group, to, when=when))
    leases = [PartitionLease(store.dir, p) for p in range(log.num_partitions)]
    try:
        _refuse_if_supervised(paths, group)
        for lease in leases:
            if not lease.try_acquire():
                raise StreamError(
                    f"cannot reset group {group!r}: a stream worker holds partition "
                    f"{lease.partition} ({lease.path}); stop the stream first, then reset"
                )
        if to == "earliest":
            offsets = log.reset_offsets(group, to, when=when)
            for p in present:
                store.delete(p)
            return ResetResult(to, offsets, checkpoints_deleted=tuple(present))
        missing = sorted(set(range(log.num_partitions)) - set(present))
        if missing:
            raise StreamError(
                f"cannot reset group {group!r} to latest: partitions {missing} have no stream "
                "checkpoint, so the stream would replay them from the log's start whatever "
                "their offsets say. Reset to earliest, or let the stream checkpoint them first"
            )
        if dlq is None:
            from pipeline.log.deadletter import dead_letter_log

            dlq = dead_letter_log(log)
        for p in present:
            ck = store.read(p)
            assert ck is not None
            end = log.end_offset(p)
            dlq_end = dlq.end_offset(p % dlq.num_partitions)
            last = log.fetch(p, end - 1, max_records=1) if end > log.start_offset(p) else []
            meta = replace(ck.meta, next_offset=end, dlq_end=dlq_end, created_at=when.isoformat(),
                           last_crc=record_crc(last[0].value) if last else None)  # fmt: skip
            store.write(meta, ck.state, ck.dedup)
        offsets = log.reset_offsets(group, to, when=when)
        return ResetResult(to, offsets, checkpoints_moved=tuple(present))
    finally:
        for lease in leases:
            lease.release()


def _refuse_if_supervised(paths: StreamPaths, group: str) -> None:
    holder = holder_if_locked(paths.supervisor_lock)
    if holder is not None:
        raise StreamError(
            f"cannot reset group {group!r}: its stream is running (supervisor pid {holder}, "
            f"{paths.supervisor_lock}); stop the stream first, then reset"
        )
