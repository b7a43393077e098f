"""An in-memory partition log with the file log's semantics, for tests: list in, list out.

>>> log = MemoryLog(num_partitions=2)
>>> log.append(0, [b"a", b"b"])
(0, 2)
>>> [r.value for r in log.fetch(0, 1)]
[b'b']
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import datetime

from pipeline.errors import LogError, OffsetOutOfRangeError
from pipeline.log import groups as gr
from pipeline.log.base import CommitEntry, PartitionInfo, PartitionLog, Record, ResetTo


class MemoryLog(PartitionLog):
    def __init__(
        self, name: str = "memory", num_partitions: int = 4, history_len: int = gr.HISTORY_LEN
    ) -> None:
        if not isinstance(num_partitions, int) or num_partitions < 1:
            raise ValueError(f"num_partitions={num_partitions!r} must be an int >= 1")
        self.name = name
        self.num_partitions = num_partitions
        self.history_len = history_len
        self._data: list[list[bytes]] = [[] for _ in range(num_partitions)]
        self._start = [0] * num_partitions  # offset of _data[p][0]
        self._groups: dict[str, gr.GroupState] = {}
        self._lock = threading.Lock()

    def _check(self, partition: int) -> None:
        if not isinstance(partition, int) or not 0 <= partition < self.num_partitions:
            raise LogError(
                f"partition {partition!r} does not exist: topic {self.name!r} has partitions "
                f"0..{self.num_partitions - 1}"
            )

    def append(self, partition: int, values: Sequence[bytes]) -> tuple[int, int]:
        self._check(partition)
        values = list(values)
        for i, v in enumerate(values):
            if not isinstance(v, bytes | bytearray | memoryview):
                raise TypeError(f"value #{i} is {type(v).__name__}, expected bytes")
            if b"\n" in v:
                raise LogError(
                    f"value #{i} contains a newline; a record is one line (encode it as JSON)"
                )
        with self._lock:
            first = self._start[partition] + len(self._data[partition])
            self._data[partition].extend(bytes(v) for v in values)
            return first, first + len(values)

    def fetch(
        self, partition: int, offset: int, max_records: int = 10_000, max_bytes: int = 8 << 20
    ) -> list[Record]:
        values, _ = self.fetch_values(partition, offset, max_records, max_bytes)
        return [Record(partition, o, v) for o, v in enumerate(values, offset)]

    def fetch_values(
        self, partition: int, offset: int, max_records: int = 10_000, max_bytes: int = 8 << 20
    ) -> tuple[list[bytes], int]:
        self._check(partition)
        with self._lock:
            start = self._start[partition]
            if offset < start:
                raise OffsetOutOfRangeError(
                    f"offset {offset} of partition {partition} is below its start offset {start}"
                )
            data = self._data[partition]
            out: list[bytes] = []
            size = 0
            for v in data[offset - start : offset - start + max(max_records, 0)]:
                size += len(v) + 1  # count like the file log: value plus its newline
                if out and size > max_bytes:
                    break
                out.append(v)
            return out, offset + len(out)

    def partition_info(self, partition: int) -> PartitionInfo:
        self._check(partition)
        with self._lock:
            data = self._data[partition]
            start = self._start[partition]
            return PartitionInfo(
                partition, start, start + len(data), 1, sum(len(v) + 1 for v in data)
            )

    def delete_before(self, partition: int, offset: int) -> int:
        """Drop records below ``offset`` (a retention stand-in); returns how many."""
        self._check(partition)
        with self._lock:
            n = max(0, min(offset - self._start[partition], len(self._data[partition])))
            del self._data[partition][:n]
            self._start[partition] += n
            return n

    # -- consumer groups -------------------------------------------------------------
    def commit(self, group: str, offsets: Mapping[int, int], when: datetime) -> None:
        gr.check_group_name(group)
        n = self.num_partitions
        ends = {p: self.end_offset(p) for p in offsets if isinstance(p, int) and 0 <= p < n}
        with self._lock:
            state = self._groups.get(group) or gr.GroupState()
            gr.apply_commit(state, offsets, when, ends, n, self.history_len)
            self._groups[group] = state

    def committed(self, group: str) -> dict[int, int]:
        with self._lock:
            state = self._groups.get(group)
            return dict(state.offsets) if state else {}

    def commit_history(self, group: str) -> dict[int, list[CommitEntry]]:
        with self._lock:
            state = self._groups.get(group)
            return {p: list(h) for p, h in state.history.items()} if state else {}

    def groups(self) -> list[str]:
        with self._lock:
            return sorted(self._groups)

    def reset_offsets(
        self, group: str, to: ResetTo = "earliest", when: datetime | None = None
    ) -> dict[int, int]:
        gr.check_group_name(group)
        if to not in ("earliest", "latest"):
            raise LogError(f"reset_offsets to={to!r}: use 'earliest' or 'latest'")
        infos = [self.partition_info(p) for p in range(self.num_partitions)]
        new = {i.partition: (i.start_offset if to == "earliest" else i.end_offset) for i in infos}
        with self._lock:
            state = self._groups.setdefault(group, gr.GroupState())
            if when is None:
                state.offsets.update(new)
                state.history.clear()
            else:
                ends = {i.partition: i.end_offset for i in infos}
                gr.apply_commit(state, new, when, ends, self.num_partitions, self.history_len)
        return new
