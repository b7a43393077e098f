"""One owned partition inside a worker: its lease, feature state, position, dead letters.

Taking a partition over (:func:`open_partition`): take the lease (the ``flock`` that
fences out any other process), read the checkpoint, restore the feature state and start
at the checkpoint's offset, or at the log's start with an empty state when there is no
checkpoint yet. Records between the checkpoint and a crash are processed again; the
dead letters they produced before the crash are already in the dead-letter topic, so
their source offsets are read back and not sent twice (:class:`DeadLetterFilter`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from pipeline.errors import EventDecodeError, FeatureError, StreamError
from pipeline.features.engine import FeatureEngine
from pipeline.features.spec import DEFAULT_SPEC, FeatureSpec
from pipeline.log.base import PartitionLog
from pipeline.log.deadletter import DeadLetters, parse_dead_letter
from pipeline.stream.admission import Admission
from pipeline.stream.checkpoint import CheckpointStore, PartitionLease
from pipeline.stream.offsets import check_resume


@dataclass
class OwnedPartition:
    partition: int
    lease: PartitionLease
    engine: FeatureEngine  # one engine per partition, so a handed-over state is dropped whole
    position: int  # next offset to process
    committed: int | None  # offset of the last checkpoint (None: none yet)
    last_checkpoint: float  # monotonic
    dirty: bool = False  # processed records since the last checkpoint
    pending_since: float | None = None  # when a partial batch was first seen
    last_activity: float = 0.0
    skip_dead: set[int] = field(default_factory=set)
    restored_from: str | None = None
    last_crc: int | None = None  # fingerprint of the record at position - 1 (checkpointed)
    # the log end last asked for (-1: ask); a lower bound of the end while the log only grows
    known_end: int = -1


class DeadLetterFilter:
    """Sends dead letters of one partition, except offsets already in the topic."""

    def __init__(self, dead_letters: DeadLetters, skip: set[int]) -> None:
        self.dead_letters = dead_letters
        self.skip = skip

    def send(self, partition: int, items: Sequence[tuple[int, bytes, EventDecodeError]]) -> None:
        if self.skip:
            fresh = [it for it in items if it[0] not in self.skip]
            self.skip.difference_update(it[0] for it in items)
            items = fresh
        self.dead_letters.send(partition, items)


def sent_dead_letters(
    dlq: PartitionLog, topic: str, partition: int, since_dlq: int, from_offset: int
) -> set[int]:
    """Source offsets (>= ``from_offset``) of ``partition`` dead-lettered at or after
    dead-letter offset ``since_dlq`` (i.e. by a run that crashed after its checkpoint)."""
    out: set[int] = set()
    dp = partition % dlq.num_partitions
    for rec in dlq.iter_records(dp, max(since_dlq, dlq.start_offset(dp))):
        dl = parse_dead_letter(rec.value)
        if (
            dl.source_topic == topic
            and dl.source_partition == partition
            and dl.source_offset >= from_offset
        ):
            out.add(dl.source_offset)
    return out


def open_partition(
    partition: int,
    log: PartitionLog,
    dlq: PartitionLog,
    checkpoints: CheckpointStore,
    lateness: timedelta,
    now: float,
    spec: FeatureSpec = DEFAULT_SPEC,
    admission: Admission | None = None,
) -> OwnedPartition | None:
    """Take ``partition`` over, or None if another process still holds its lease.

    ``admission`` gets the partition's dedup window from the checkpoint (a fresh one
    without). A checkpoint past the log end (the log lost records) is refused with the
    remedy (:class:`~pipeline.stream.offsets.OffsetsPastEndError`), never skipped."""
    # the backend's lease (PostgreSQL: epoch-fenced), else the file backend's flock
    lease = checkpoints.lease(partition) if hasattr(checkpoints, "lease") else PartitionLease(checkpoints.dir, partition)
    if not lease.try_acquire():
        return None
    try:
        checkpoints.clean_temp(partition)
        ck = checkpoints.read(partition)
        engine = FeatureEngine(log.num_partitions, lateness, spec)  # the topic's feature spec
        if ck is None:
            if admission is not None:
                admission.restore(partition, b"")
            return OwnedPartition(
                partition, lease, engine, log.start_offset(partition), None, now, last_activity=now
            )
        try:
            engine.restore(partition, ck.state)
        except FeatureError as exc:
            raise StreamError(
                f"checkpoint {ck.path} cannot be restored: {exc}. Delete it (rm '{ck.path}') to rebuild "
                f"partition {partition}'s features by replaying the log (scores are rewritten idempotently)."
            ) from None
        start = log.start_offset(partition)
        if ck.meta.next_offset < start:
            raise StreamError(
                f"checkpoint {ck.path} resumes partition {partition} at offset {ck.meta.next_offset}, but "
                f"retention already deleted the log below {start}: records were lost to this group. Delete "
                "the checkpoint to rebuild from what the log still holds, or raise the retention."
            )
        check_resume(log, checkpoints.group, partition, ck.meta.next_offset, ck.meta.last_crc)
        if admission is not None:
            try:
                admission.restore(partition, ck.dedup)
            except FeatureError as exc:
                raise checkpoints.corrupt(ck.path, partition, str(exc)) from None
        skip = sent_dead_letters(dlq, log.name, partition, ck.meta.dlq_end, ck.meta.next_offset)
        return OwnedPartition(
            partition,
            lease,
            engine,
            ck.meta.next_offset,
            ck.meta.next_offset,
            now,
            last_activity=now,
            skip_dead=skip,
            restored_from=str(ck.path),
            last_crc=ck.meta.last_crc,
        )
    except BaseException:
        lease.release()
        raise
