"""Per-partition checkpoints: feature state and offsets together, written atomically.

One file per partition, ``<data_dir>/stream/<group>/checkpoints/partition-<p>.ckpt``::

    MAGIC | u32 header length | JSON header | feature-state snapshot | dedup window | u32 crc32

The header holds the topic, group, partition, ``next_offset`` (the first record *not*
in the state), the dead-letter partition's end offset at that moment, the model
version and the length of the event-id dedup window (:mod:`pipeline.stream.admission`),
which is saved with the features so a restart decides duplicates exactly as an
uninterrupted run. Format 1 files (no dedup window) are still read. The file is replaced atomically (temp file, fsync, ``os.replace``, fsync of the
directory), so a worker killed at any instant leaves the old or the new checkpoint,
never a torn one; the CRC catches a file damaged otherwise. An unreadable file is never
skipped silently: :class:`~pipeline.errors.CheckpointCorruptError` names the file and
the way out.

Ownership is fenced with :class:`PartitionLease`: a worker holds an exclusive ``flock``
on ``partition-<p>.lock`` for as long as it processes the partition. The kernel drops the
lock when the process dies (even by SIGKILL), so a successor can take over at once, and
two processes can never process one partition at the same time, whatever the store's
assignment table says in between.
"""

from __future__ import annotations

import json
import os
import uuid
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.errors import CheckpointCorruptError
from pipeline.pidlock import PidLock

MAGIC = b"CHURNCK\x01"
FORMAT = 2
READS = (1, 2)  # format 1: no dedup window


@dataclass(frozen=True)
class CheckpointMeta:
    topic: str
    group: str
    partition: int
    next_offset: int  # first log offset not applied to the state
    dlq_end: int  # end offset of the dead-letter partition when the state was taken
    created_at: str  # ISO time (injected clock)
    model_version: str | None = None
    format: int = FORMAT
    last_crc: int | None = None  # crc32 of the record at next_offset - 1 (None: unknown)


@dataclass(frozen=True)
class Checkpoint:
    meta: CheckpointMeta
    state: bytes  # pipeline.features snapshot bytes (has its own versions and CRC)
    path: Path
    dedup: bytes = b""  # pipeline.stream.admission window (empty: none saved)


class CheckpointStore:
    """Reads and atomically writes the checkpoints of one consumer group."""

    def __init__(self, directory: Path, topic: str, group: str) -> None:
        self.dir = Path(directory)
        self.topic = topic
        self.group = group

    def path(self, partition: int) -> Path:
        return self.dir / f"partition-{partition}.ckpt"

    def write(self, meta: CheckpointMeta, state: bytes, dedup: bytes = b"") -> Path:
        """Atomically replace the partition's checkpoint; returns its path."""
        if (meta.topic, meta.group) != (self.topic, self.group):
            raise ValueError(
                f"checkpoint of {meta.topic}/{meta.group} written to the store of {self.topic}/{self.group}"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.path(meta.partition)
        doc = asdict(meta) | {"format": FORMAT, "dedup_bytes": len(dedup)}
        header = json.dumps(doc, sort_keys=True).encode()
        parts = (MAGIC, len(header).to_bytes(4, "little"), header, state, dedup)
        crc = 0
        for chunk in parts:
            crc = zlib.crc32(chunk, crc)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            for chunk in (*parts, crc.to_bytes(4, "little")):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException as exc:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):  # a full disk, a quota: say which file (the old one stays)
                raise OSError(exc.errno, f"cannot write checkpoint {path} ({exc.strerror}); the previous "
                                         "checkpoint is kept") from None
            raise
        os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)  # make the rename itself durable
        finally:
            os.close(dfd)
        return path

    def read(self, partition: int) -> Checkpoint | None:
        """The partition's checkpoint, or None if it has none yet."""
        path = self.path(partition)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self.corrupt(path, partition, f"cannot read it: {exc.strerror}") from None
        if len(raw) < len(MAGIC) + 8 or not raw.startswith(MAGIC):
            raise self.corrupt(path, partition, "not a checkpoint file (bad magic)")
        body, crc = memoryview(raw)[:-4], int.from_bytes(raw[-4:], "little")
        if zlib.crc32(body) != crc:
            raise self.corrupt(path, partition, "checksum mismatch (torn or damaged file)")
        n = int.from_bytes(raw[len(MAGIC) : len(MAGIC) + 4], "little")
        start = len(MAGIC) + 4
        try:
            doc = json.loads(bytes(body[start : start + n]))
            dedup_n = int(doc.pop("dedup_bytes", 0))
            meta = CheckpointMeta(**doc)
            if not 0 <= dedup_n <= len(body) - start - n:
                raise ValueError(f"dedup_bytes={dedup_n} exceeds the file")
        except (ValueError, TypeError) as exc:
            raise self.corrupt(path, partition, f"unreadable header ({exc})") from None
        if meta.format not in READS:
            raise self.corrupt(path, partition, f"format {meta.format}, this code reads {READS}")
        if (meta.topic, meta.group, meta.partition) != (self.topic, self.group, partition):
            raise self.corrupt(
                path, partition,
                f"it belongs to topic {meta.topic!r} group {meta.group!r} partition "
                f"{meta.partition}, not topic {self.topic!r} group {self.group!r} partition {partition}",
            )  # fmt: skip
        cut = len(body) - dedup_n
        return Checkpoint(meta, bytes(body[start + n : cut]), path, bytes(body[cut:]))

    def next_offset(self, partition: int) -> int | None:
        """The offset the partition's checkpoint resumes at, from its header alone (no
        checksum, no state: a cheap hint for polling; :meth:`read` checks the file); None
        when it has no checkpoint or the header cannot be read."""
        try:
            with open(self.path(partition), "rb") as f:
                head = f.read(len(MAGIC) + 4)
                if len(head) < len(MAGIC) + 4 or not head.startswith(MAGIC):
                    return None
                doc = json.loads(f.read(int.from_bytes(head[len(MAGIC) :], "little")))
            return int(doc["next_offset"])
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def delete(self, partition: int) -> None:
        self.path(partition).unlink(missing_ok=True)

    def clean_temp(self, partition: int) -> None:
        """Remove temp files a killed writer left behind (call while holding the lease)."""
        for stale in self.dir.glob(f".partition-{partition}.ckpt.*.tmp"):
            stale.unlink(missing_ok=True)

    def corrupt(self, path: Path, partition: int, reason: str) -> CheckpointCorruptError:
        return CheckpointCorruptError(
            f"checkpoint {path} of partition {partition} (group {self.group!r}) is unusable: "
            f"{reason}. It was not skipped silently. To recover, restore the file from a backup, or "
            f"delete it (rm '{path}'): the partition's features are then rebuilt by replaying what its "
            f"log still holds and rescored by the current champion. If retention has dropped older "
            f"records, what they held is gone: windows reaching before the first kept record are short "
            f"until they refill, and a user whose signup was dropped has no known signup (tenure) "
            f"unless they sign up again. A stored score never goes back to an older event time."
        )


class PartitionLease(PidLock):
    """An exclusive, non-blocking ``flock`` on one partition's lock file."""

    def __init__(self, directory: Path, partition: int) -> None:
        super().__init__(Path(directory) / f"partition-{partition}.lock")
        self.partition = partition
