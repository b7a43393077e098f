"""Retention: delete whole old segments so a partition's start offset moves forward.

A segment is deleted only if all of these hold (Kafka's rules plus a safety guard):

* it is not the active (newest) segment;
* every older segment is deleted too (only a prefix goes, so offsets stay dense);
* it is older than ``max_age_s`` (age = ``clock.now()`` minus the **newest event time
  among its records**, like Kafka's largest-timestamp rule, so copying or touching
  files does not change retention; file mtime is the fallback only when no record
  carries a valid ``ts``), or the partition is above ``max_bytes`` without it;
* every known consumer group has committed past its last record, unless
  ``allow_uncommitted`` (a group that never committed a partition blocks it: for
  that group every record there is still lag).

Works on any log with ``segments(p)`` / ``delete_segments(p, bases)`` (the file log).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pipeline.clock import Clock
from pipeline.errors import ConfigError
from pipeline.events import event_time


class SegmentedLog(Protocol):
    num_partitions: int

    def segments(self, partition: int) -> list[Any]: ...
    def delete_segments(self, partition: int, bases: list[int]) -> None: ...
    def groups(self) -> list[str]: ...
    def committed(self, group: str) -> dict[int, int]: ...


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    max_age_s: float | None = None
    max_bytes: int | None = None
    allow_uncommitted: bool = False

    def __post_init__(self) -> None:
        if self.max_age_s is not None and self.max_age_s <= 0:
            raise ConfigError(
                f"retention max_age_s={self.max_age_s} must be > 0 (or None: keep forever)"
            )
        if self.max_bytes is not None and self.max_bytes <= 0:
            raise ConfigError(
                f"retention max_bytes={self.max_bytes} must be > 0 (or None: no size limit)"
            )

    @classmethod
    def from_settings(cls, settings: Any) -> RetentionPolicy:
        hours = settings.retention_hours
        return cls(
            max_age_s=None if hours is None else hours * 3600.0,
            max_bytes=settings.retention_bytes,
            allow_uncommitted=settings.retention_allow_uncommitted,
        )

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> RetentionPolicy:
        """From ``FileLog.retention`` (as built by ``file_options(settings)``)."""
        hours = m.get("retention_hours")
        return cls(
            max_age_s=None if hours is None else float(hours) * 3600.0,
            max_bytes=m.get("retention_bytes"),
            allow_uncommitted=bool(m.get("allow_uncommitted", False)),
        )


@dataclass(frozen=True, slots=True)
class DeletedSegment:
    partition: int
    base_offset: int
    end_offset: int  # the partition's new start offset is at least this
    bytes: int
    reason: str  # "age" or "size"
    newest: datetime | None  # newest event time in it (mtime fallback); None if not needed


def newest_time(path: Path, mtime: float) -> datetime:
    """Newest valid event time in a segment file, else its modification time."""
    best: datetime | None = None
    with open(path, "rb") as f:
        for line in f:
            t = event_time(line)
            if t is not None and (best is None or t > best):
                best = t
    return best or datetime.fromtimestamp(mtime, UTC)


def apply_retention(
    log: SegmentedLog, policy: RetentionPolicy, clock: Clock
) -> list[DeletedSegment]:
    """Delete what ``policy`` allows on every partition; return what was deleted."""
    if policy.max_age_s is None and policy.max_bytes is None:
        return []
    now = clock.now()
    commits = [log.committed(g) for g in log.groups()]
    deleted: list[DeletedSegment] = []
    for p in range(log.num_partitions):
        segs = log.segments(p)
        if len(segs) < 2:
            continue
        start = segs[0].base
        # the oldest offset some group still needs (a never-committed partition: start)
        needed = min((c.get(p, start) for c in commits), default=None)
        total = sum(s.bytes for s in segs)
        doomed: list[DeletedSegment] = []
        for seg in segs[:-1]:  # never the active segment
            if not policy.allow_uncommitted and needed is not None and seg.end > needed:
                break
            newest = newest_time(seg.path, seg.mtime) if policy.max_age_s is not None else None
            if policy.max_bytes is not None and total > policy.max_bytes:
                reason = "size"
            elif newest is not None and (now - newest).total_seconds() > policy.max_age_s:  # type: ignore[operator]
                reason = "age"
            else:
                break
            doomed.append(DeletedSegment(p, seg.base, seg.end, seg.bytes, reason, newest))
            total -= seg.bytes
        if doomed:
            log.delete_segments(p, [d.base_offset for d in doomed])
            deleted += doomed
    return deleted
