"""The partition-log interface every backend implements (memory, file, later Kafka).

Semantics follow Kafka where a user can see them:

* a topic has ``num_partitions`` partitions, fixed at creation;
* a record's key (the user id) routes it: ``partition = murmur2(key) % N``;
* offsets are dense per partition, start at 0, and never change once assigned;
* ``end_offset`` is the log-end offset (offset of the *next* record);
* a consumer group's committed offset is the offset of the next record to read,
  so ``lag = end_offset - committed``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import msgspec


class Record(msgspec.Struct, frozen=True, gc=False):
    """One stored record: ``value`` is the encoded event line without its newline.

    Immutable, compared and hashed by value, like a frozen dataclass. It is a
    ``msgspec.Struct`` because ``fetch`` builds one per record on the consumer's hot
    path: construction is ~10x cheaper than a frozen dataclass's, and ``gc=False``
    (it holds only ints and bytes, so no cycles) keeps the garbage collector from
    rescanning millions of them. Use ``msgspec.structs.replace`` instead of
    ``dataclasses.replace``.
    """

    partition: int
    offset: int
    value: bytes


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    partition: int
    start_offset: int  # first offset still stored (retention moves it forward)
    end_offset: int  # log-end offset: offset the next appended record gets
    segments: int
    bytes: int

    @property
    def records(self) -> int:
        return self.end_offset - self.start_offset


@dataclass(frozen=True, slots=True)
class CommitEntry:
    """One past commit of a group on one partition, kept for lag evaluation (Burrow)."""

    when: datetime  # injected clock at commit time, UTC
    offset: int  # committed next-offset-to-read
    log_end: int  # log-end offset at commit time, so lag then = log_end - offset

    @property
    def lag(self) -> int:
        return max(self.log_end - self.offset, 0)


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """Summary for ``churn topics``: one row per partition plus totals."""

    name: str
    num_partitions: int
    partitions: tuple[PartitionInfo, ...]
    groups: tuple[str, ...] = ()
    retention: Mapping[str, Any] = field(default_factory=dict)

    @property
    def segments(self) -> int:
        return sum(p.segments for p in self.partitions)

    @property
    def records(self) -> int:
        return sum(p.records for p in self.partitions)

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.partitions)


ResetTo = Literal["earliest", "latest"]


class PartitionLog(ABC):
    """One topic of a partitioned, append-only log plus its consumer groups' offsets."""

    name: str
    num_partitions: int

    # -- producing -------------------------------------------------------------------
    @abstractmethod
    def append(self, partition: int, values: Sequence[bytes]) -> tuple[int, int]:
        """Append ``values`` to one partition atomically (no interleaving with other
        producers); return ``(first_offset, end_offset)`` of the batch."""

    def produce(self, items: Iterable[tuple[bytes, bytes]]) -> dict[int, tuple[int, int]]:
        """Route ``(key, value)`` pairs by murmur2(key) and append them per partition,
        keeping their order within each partition. Returns per-partition offset ranges."""
        from pipeline.log.partitioner import partition_for

        batches: dict[int, list[bytes]] = {}
        n = self.num_partitions
        for key, value in items:
            batches.setdefault(partition_for(key, n), []).append(value)
        return {p: self.append(p, vals) for p, vals in sorted(batches.items())}

    # -- consuming -------------------------------------------------------------------
    @abstractmethod
    def fetch(
        self, partition: int, offset: int, max_records: int = 10_000, max_bytes: int = 8 << 20
    ) -> list[Record]:
        """Records from ``offset`` on (at least one if any exists, even if larger than
        ``max_bytes``). Never returns a torn (partially written) record. An offset below
        ``start_offset`` raises ``OffsetOutOfRangeError``; at/after the end returns []."""

    def fetch_values(
        self, partition: int, offset: int, max_records: int = 10_000, max_bytes: int = 8 << 20
    ) -> tuple[list[bytes], int]:
        """Like :meth:`fetch` but only the values plus the next offset to fetch: the hot
        path for consumers that track offsets themselves (no per-record object)."""
        records = self.fetch(partition, offset, max_records, max_bytes)
        return [r.value for r in records], (records[-1].offset + 1 if records else offset)

    def iter_records(self, partition: int, start: int, stop: int | None = None) -> Iterator[Record]:
        """Records ``start <= offset < stop`` (``stop=None``: up to the current end)."""
        end = self.end_offset(partition) if stop is None else stop
        offset = start
        while offset < end:
            batch = self.fetch(partition, offset, max_records=min(10_000, end - offset))
            if not batch:
                return
            yield from batch
            offset = batch[-1].offset + 1

    @abstractmethod
    def partition_info(self, partition: int) -> PartitionInfo: ...

    def topic_info(self) -> TopicInfo:
        """Partitions, segments, records and bytes, for ``churn topics``."""
        return TopicInfo(
            name=self.name,
            num_partitions=self.num_partitions,
            partitions=tuple(self.partition_info(p) for p in range(self.num_partitions)),
            groups=tuple(self.groups()),
        )

    def end_offset(self, partition: int) -> int:
        return self.partition_info(partition).end_offset

    def start_offset(self, partition: int) -> int:
        return self.partition_info(partition).start_offset

    # -- consumer groups -------------------------------------------------------------
    @abstractmethod
    def commit(self, group: str, offsets: Mapping[int, int], when: datetime) -> None:
        """Atomically store the group's next-offset-to-read for the given partitions
        (others keep their committed value). ``when`` (injected clock) is kept in a
        short commit history per partition for lag evaluation."""

    @abstractmethod
    def committed(self, group: str) -> dict[int, int]:
        """Committed offsets of ``group`` (partitions never committed are absent)."""

    @abstractmethod
    def groups(self) -> list[str]: ...

    def commit_history(self, group: str) -> dict[int, list[CommitEntry]]:
        """Recent commits per partition, oldest first (empty if the backend keeps none;
        Burrow status then stays OK)."""
        return {}

    @abstractmethod
    def reset_offsets(
        self, group: str, to: ResetTo = "earliest", when: datetime | None = None
    ) -> dict[int, int]:
        """Set every partition of ``group`` to its start (``earliest``) or end
        (``latest``) offset. Also the recovery path for an unreadable offsets file,
        which is overwritten, not read. With ``when`` the reset is kept in the commit
        history like a commit (so Burrow reports a REWIND if it went back); without it
        the history restarts. Returns the new offsets."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release file handles / connections."""
