"""The embedded (default) backend: a topic is a directory of partition directories.

Layout, Kafka-like so that anyone who knows Kafka can find their way::

    <root>/<topic>/topic.json                 partition count, fixed at creation
    <root>/<topic>/partition-<p>/<base>.log    JSON lines, one record per line
    <root>/<topic>/partition-<p>/<base>.index  sparse offset -> byte index (derived)
    <root>/<topic>/groups/<group>.json         committed offsets + recent commits

Several producer and consumer processes may use one topic at once (see
:mod:`pipeline.log.partition` for the locking rules).

>>> log = open_log(tmp, "events", num_partitions=2)        # doctest: +SKIP
>>> log.produce([(b"u1", b'{"a":1}')])                      # doctest: +SKIP
{1: (0, 1)}
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.clock import Clock, SystemClock
from pipeline.errors import ConfigError, LogError, TopicMismatchError
from pipeline.log import groups as gr
from pipeline.log.base import CommitEntry, PartitionInfo, PartitionLog, Record, ResetTo, TopicInfo
from pipeline.log.partition import PartitionStore, SegmentMeta
from pipeline.log.partitioner import partition_for
from pipeline.log.segment import MAX_SEGMENT_BYTES

DEFAULT_PARTITIONS = 4
META = "topic.json"
FSYNC_POLICIES = ("never", "batch", "interval")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$")


class FileLog(PartitionLog):
    """A topic stored as segment files under ``path`` (created if missing)."""

    def __init__(
        self,
        path: Path,
        num_partitions: int | None = None,
        *,
        segment_bytes: int = 64 << 20,
        index_interval_bytes: int = 4096,
        fsync: str = "never",
        fsync_interval_s: float = 1.0,
        retention: Mapping[str, Any] | None = None,
        history_len: int = gr.HISTORY_LEN,
        clock: Clock | None = None,
        create: bool = True,
    ) -> None:
        if not 1 <= segment_bytes <= MAX_SEGMENT_BYTES:
            raise ConfigError(f"segment_bytes={segment_bytes} must be in 1..{MAX_SEGMENT_BYTES}")
        if index_interval_bytes < 1:
            raise ConfigError(f"index_interval_bytes={index_interval_bytes} must be >= 1")
        if fsync not in FSYNC_POLICIES:
            raise ConfigError(f"fsync={fsync!r} must be one of {FSYNC_POLICIES}")
        if fsync_interval_s <= 0:
            raise ConfigError(f"fsync_interval_s={fsync_interval_s} must be > 0")
        self.path = Path(path)
        self.name = self.path.name
        if not _NAME_RE.match(self.name):
            raise ConfigError(
                f"invalid topic name {self.name!r}: use [A-Za-z0-9._-], not starting with '.'/'-'"
            )
        self.num_partitions = self._open_meta(num_partitions, create)
        self.retention = dict(retention or {})
        self.history_len = history_len
        clock = clock or SystemClock()
        self._parts = [
            PartitionStore(
                self.path / f"partition-{p}",
                p,
                segment_bytes=segment_bytes,
                index_interval=index_interval_bytes,
                fsync=fsync,
                fsync_interval_s=fsync_interval_s,
                clock=clock,
            )
            for p in range(self.num_partitions)
        ]
        self._groups = gr.FileGroupStore(self.path / "groups", self.num_partitions)

    def _open_meta(self, requested: int | None, create: bool) -> int:
        meta = self.path / META
        if requested is not None and (not isinstance(requested, int) or requested < 1):
            raise ConfigError(f"num_partitions={requested!r} must be an int >= 1")
        if not meta.exists():
            problem = lost_metadata(self.path)
            if problem is not None:  # creating it anew could change the partition count: users re-routed
                raise LogError(problem)
            if not create:
                raise LogError(
                    f"topic {self.name!r} does not exist at {self.path}; produce to it first"
                )
            n = requested or DEFAULT_PARTITIONS
            self.path.mkdir(parents=True, exist_ok=True)
            doc = {"format": 1, "name": self.name, "num_partitions": n, "record_format": "jsonl"}
            tmp = self.path / f".{META}.{uuid.uuid4().hex[:8]}.tmp"
            tmp.write_text(json.dumps(doc, indent=1) + "\n")
            with contextlib.suppress(FileExistsError):  # another process won the race
                os.link(tmp, meta)
            tmp.unlink()
            for p in range(n):
                (self.path / f"partition-{p}").mkdir(exist_ok=True)
        try:
            stored = json.loads(meta.read_text())["num_partitions"]
            if not isinstance(stored, int) or stored < 1:
                raise ValueError(f"num_partitions={stored!r}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LogError(
                f"topic metadata {meta} is unreadable ({exc}); restore it or delete the topic"
            ) from None
        if requested is not None and requested != stored:
            raise TopicMismatchError(
                f"topic {self.name!r} at {self.path} has {stored} partitions, but "
                f"{requested} were requested. Leave the count unset to use the stored one, or "
                f"ask for {stored} (--partitions {stored} / CHURN_PARTITIONS={stored}; "
                f"num_partitions={stored} in Python), or use a new topic name / delete "
                f"{self.path} to recreate it with {requested} (partition counts are fixed: "
                "changing them would re-route users)."
            )
        return stored

    def _part(self, partition: int) -> PartitionStore:
        if not isinstance(partition, int) or not 0 <= partition < self.num_partitions:
            raise LogError(
                f"partition {partition!r} does not exist: topic {self.name!r} has partitions "
                f"0..{self.num_partitions - 1}"
            )
        return self._parts[partition]

    # -- producing -------------------------------------------------------------------
    def append(self, partition: int, values: Sequence[bytes]) -> tuple[int, int]:
        store = self._part(partition)
        values = values if isinstance(values, list) else list(values)
        if not values:
            end = store.offsets()[1]
            return end, end
        return store.append(values)

    def produce(self, items: Iterable[tuple[bytes, bytes]]) -> dict[int, tuple[int, int]]:
        n = self.num_partitions
        batches: list[list[bytes]] = [[] for _ in range(n)]
        for key, value in items:
            batches[partition_for(key, n)].append(value)
        return {p: self.append(p, b) for p, b in enumerate(batches) if b}

    # -- consuming -------------------------------------------------------------------
    def fetch(
        self, partition: int, offset: int, max_records: int = 10_000, max_bytes: int = 8 << 20
    ) -> list[Record]:
        values, _ = self._part(partition).fetch_values(offset, max_records, max_bytes)
        return [Record(partition, o, v) for o, v in enumerate(values, offset)]

    def fetch_values(
        self, partition: int, offset: int, max_records: int = 10_000, max_bytes: int = 8 << 20
    ) -> tuple[list[bytes], int]:
        return self._part(partition).fetch_values(offset, max_records, max_bytes)

    def partition_info(self, partition: int) -> PartitionInfo:
        segs = self._part(partition).segments()
        start, end = (segs[0].base, segs[-1].end) if segs else (0, 0)
        return PartitionInfo(partition, start, end, len(segs), sum(s.bytes for s in segs))

    def end_offset(self, partition: int) -> int:
        return self._part(partition).offsets()[1]

    def start_offset(self, partition: int) -> int:
        return self._part(partition).offsets()[0]

    def topic_info(self) -> TopicInfo:
        info = super().topic_info()
        return TopicInfo(
            info.name, info.num_partitions, info.partitions, info.groups, self.retention
        )

    # -- segments (retention) --------------------------------------------------------
    def segments(self, partition: int) -> list[SegmentMeta]:
        """Segments of one partition, oldest first; the last one is active."""
        return self._part(partition).segments()

    def delete_segments(self, partition: int, bases: list[int]) -> None:
        """Delete sealed segments by base offset (retention; never the active one)."""
        self._part(partition).delete_segments(bases)

    # -- consumer groups -------------------------------------------------------------
    def commit(self, group: str, offsets: Mapping[int, int], when: datetime) -> None:
        n = self.num_partitions
        ends = {p: self.end_offset(p) for p in offsets if isinstance(p, int) and 0 <= p < n}
        with self._groups.locked(group):
            state = self._groups.read(group)
            gr.apply_commit(state, offsets, when, ends, n, self.history_len)
            self._groups.write(group, state)

    def committed(self, group: str) -> dict[int, int]:
        return dict(self._groups.read(group).offsets)

    def commit_history(self, group: str) -> dict[int, list[CommitEntry]]:
        return self._groups.read(group).history

    def groups(self) -> list[str]:
        return self._groups.groups()

    def reset_offsets(
        self, group: str, to: ResetTo = "earliest", when: datetime | None = None
    ) -> dict[int, int]:
        if to not in ("earliest", "latest"):
            raise LogError(f"reset_offsets to={to!r}: use 'earliest' or 'latest'")
        bounds = [p.offsets() for p in self._parts]
        new = {p: (s if to == "earliest" else e) for p, (s, e) in enumerate(bounds)}
        with self._groups.locked(group):
            try:
                state = self._groups.read(group)
            except gr.OffsetsCorruptError:
                state = gr.GroupState()  # the documented recovery: overwrite, don't read
            if when is None:
                state.offsets.update(new)
                state.history.clear()
            else:
                gr.apply_commit(
                    state,
                    new,
                    when,
                    {p: e for p, (_, e) in enumerate(bounds)},
                    self.num_partitions,
                    self.history_len,
                )
            self._groups.write(group, state)
        return new

    def close(self) -> None:
        for p in self._parts:
            p.close()

    def __enter__(self) -> FileLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FileLog({str(self.path)!r}, num_partitions={self.num_partitions})"


def lost_metadata(topic_dir: Path) -> str | None:
    """Why the topic at ``topic_dir`` cannot be opened although its records are there: its
    ``topic.json`` is gone while ``partition-N`` folders hold segments (deleted by hand, a
    partial restore). None when there is metadata, or no records. Recreating the file with
    a default partition count would route users to other partitions than their history, so
    the message gives the file's content as the folders show it, to restore it deliberately."""
    meta = topic_dir / META
    if meta.exists():
        return None
    held = sorted(int(d.name.removeprefix("partition-")) for d in topic_dir.glob("partition-*")
                  if d.name.removeprefix("partition-").isdigit()
                  and any(f.stat().st_size for f in d.glob("*.log")))  # fmt: skip
    if not held:
        return None
    n = max(held) + 1
    doc = json.dumps({"format": 1, "name": topic_dir.name, "num_partitions": n, "record_format": "jsonl"})
    return (
        f"topic metadata {meta} is missing, but {topic_dir} holds records in partitions {held}: it was "
        f"deleted or not restored. Restore it from a backup, or write it again as the partition folders "
        f"show it ({n} partitions, if no higher partition was empty): echo '{doc}' > {meta}. (Nothing was "
        "created: a new topic of another partition count would route users to other partitions.)"
    )


def open_log(
    root_dir: Path | str, name: str, num_partitions: int | None = None, **options: Any
) -> FileLog:
    """Open (creating if needed) topic ``name`` under ``root_dir``.

    ``num_partitions=None`` uses the stored count (or 4 for a new topic); a different
    explicit count raises ``TopicMismatchError``. ``options`` go to :class:`FileLog`.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(
            f"invalid topic name {name!r}: use [A-Za-z0-9._-], not starting with '.'/'-'"
        )
    return FileLog(Path(root_dir) / name, num_partitions, **options)


def file_options(settings: Any) -> dict[str, Any]:
    """FileLog options from a :class:`pipeline.config.Settings` (duck-typed)."""
    return {
        "segment_bytes": settings.log_segment_bytes,
        "index_interval_bytes": settings.log_index_interval_bytes,
        "fsync": settings.log_fsync,
        "fsync_interval_s": settings.log_fsync_interval_s,
        "retention": {
            "retention_hours": settings.retention_hours,
            "retention_bytes": settings.retention_bytes,
            "allow_uncommitted": settings.retention_allow_uncommitted,
        },
    }
