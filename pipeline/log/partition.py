"""One partition directory of the file log: a writer and a reader side by side.

Writes serialise on a per-partition ``flock`` (:mod:`pipeline.log.writer`); reads take
no lock and never return a torn line (:mod:`pipeline.log.reader`). Both sides keep
only caches; the files are the truth, so any number of processes can share them.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.clock import Clock
from pipeline.log.reader import PartitionReader, SegmentMeta
from pipeline.log.writer import PartitionWriter

__all__ = ["PartitionStore", "SegmentMeta"]


class PartitionStore:
    def __init__(
        self,
        directory: Path,
        partition: int,
        *,
        segment_bytes: int,
        index_interval: int,
        fsync: str,
        fsync_interval_s: float,
        clock: Clock,
    ) -> None:
        self.writer = PartitionWriter(
            directory,
            partition,
            segment_bytes=segment_bytes,
            index_interval=index_interval,
            fsync=fsync,
            fsync_interval_s=fsync_interval_s,
            clock=clock,
        )
        self.reader = PartitionReader(directory, partition, index_interval)
        self.append = self.writer.append
        self.fetch_values = self.reader.fetch_values
        self.offsets = self.reader.offsets
        self.segments = self.reader.segments

    def delete_segments(self, bases: list[int]) -> None:
        """Delete whole sealed segments, oldest first, under the write lock."""
        self.writer.delete_segments(bases)
        self.reader.refresh()

    def close(self) -> None:
        self.writer.close()
        self.reader.close()
