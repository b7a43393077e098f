"""Consumer-group offsets: the in-memory model and its crash-safe file store.

A group's state is its committed next-offset-to-read per partition plus a short
history of recent commits (when, offset, log-end offset then) that the lag evaluator
(Burrow's rules) reads. The file store keeps one JSON file per group,
``<topic>/groups/<group>.json``, and replaces it atomically (temp file, fsync,
``os.replace``, fsync of the directory), so a crash or ``kill -9`` mid-commit leaves
either the old or the new file, never a torn one. Read-modify-write of one group is
serialised across processes with ``flock`` on ``<group>.lock``.

An unreadable file is never reset silently: it raises ``OffsetsCorruptError`` naming
the file and the way out (``reset_offsets(group, to="earliest"|"latest")``, the
CLI's ``--reset-offsets``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import msgspec

from pipeline.errors import LogError, OffsetsCorruptError
from pipeline.log.base import CommitEntry

HISTORY_LEN = 20
FORMAT_VERSION = 1
_GROUP_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")


def check_group_name(group: str) -> str:
    if not isinstance(group, str) or not _GROUP_RE.match(group):
        raise LogError(
            f"invalid consumer group name {group!r}: use 1-100 characters from "
            "[A-Za-z0-9._-], not starting with '.' or '-'"
        )
    return group


@dataclass
class GroupState:
    """Committed offsets and recent commit history of one group (mutable, private)."""

    offsets: dict[int, int] = field(default_factory=dict)
    history: dict[int, list[CommitEntry]] = field(default_factory=dict)


def apply_commit(
    state: GroupState,
    offsets: Mapping[int, int],
    when: datetime,
    log_ends: Mapping[int, int],
    num_partitions: int,
    history_len: int = HISTORY_LEN,
) -> None:
    """Validate and apply one commit to ``state`` in place."""
    if when.tzinfo is None:
        raise LogError(f"commit time must be timezone-aware (got naive {when!r}); pass clock.now()")
    when = when.astimezone(UTC)
    for p, off in offsets.items():
        if not (isinstance(p, int) and 0 <= p < num_partitions):
            raise LogError(
                f"cannot commit partition {p!r}: topic has partitions 0..{num_partitions - 1}"
            )
        if not isinstance(off, int) or off < 0:
            raise LogError(f"cannot commit offset {off!r} for partition {p}: offsets are ints >= 0")
    for p, off in offsets.items():
        state.offsets[p] = off
        hist = state.history.setdefault(p, [])
        hist.append(CommitEntry(when=when, offset=off, log_end=log_ends[p]))
        del hist[:-history_len]


# -- file format -------------------------------------------------------------------------
class _Commit(msgspec.Struct, forbid_unknown_fields=True):
    at: Annotated[datetime, msgspec.Meta(tz=True)]
    offset: Annotated[int, msgspec.Meta(ge=0)]
    log_end: Annotated[int, msgspec.Meta(ge=0)]


class _GroupFile(msgspec.Struct, forbid_unknown_fields=True):
    format: int
    group: str
    offsets: dict[int, Annotated[int, msgspec.Meta(ge=0)]]
    history: dict[int, list[_Commit]]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_GroupFile)


def encode_state(group: str, state: GroupState) -> bytes:
    doc = _GroupFile(
        format=FORMAT_VERSION,
        group=group,
        offsets=dict(sorted(state.offsets.items())),
        history={
            p: [_Commit(at=c.when, offset=c.offset, log_end=c.log_end) for c in h]
            for p, h in sorted(state.history.items())
        },
    )
    return msgspec.json.format(_encoder.encode(doc), indent=1) + b"\n"


def corrupt(path: Path, group: str, reason: str) -> OffsetsCorruptError:
    return OffsetsCorruptError(
        f"committed offsets of consumer group {group!r} in {path} are unreadable ({reason}); "
        f"they were not reset silently. A stream group (`churn stream`) with intact checkpoints: "
        f"move it aside and restart the stream (each worker commits its checkpoint's offset again; "
        f"nothing is replayed or skipped). Otherwise recover with --reset-offsets earliest|latest "
        f"(API: log.reset_offsets({group!r}, to='earliest'|'latest')), or restore the file."
    )


def decode_state(path: Path, group: str, raw: bytes, num_partitions: int) -> GroupState:
    try:
        doc = _decoder.decode(raw)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        raise corrupt(path, group, str(exc)) from None
    if doc.format != FORMAT_VERSION:
        raise corrupt(path, group, f"unknown format {doc.format}, expected {FORMAT_VERSION}")
    if doc.group != group:
        raise corrupt(path, group, f"file names group {doc.group!r}")
    bad = [p for p in (*doc.offsets, *doc.history) if not 0 <= p < num_partitions]
    if bad:
        raise corrupt(path, group, f"partition {bad[0]} outside 0..{num_partitions - 1}")
    return GroupState(
        offsets=dict(doc.offsets),
        history={
            p: [
                CommitEntry(when=c.at.astimezone(UTC), offset=c.offset, log_end=c.log_end)
                for c in h
            ]
            for p, h in doc.history.items()
        },
    )


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers and crashes see old or new, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)  # make the rename itself durable
    finally:
        os.close(dfd)


class FileGroupStore:
    """Group offsets of one topic, one atomically replaced JSON file per group."""

    def __init__(self, directory: Path, num_partitions: int) -> None:
        self.dir = directory
        self.num_partitions = num_partitions

    def path(self, group: str) -> Path:
        return self.dir / f"{check_group_name(group)}.json"

    def groups(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.stem for p in self.dir.glob("*.json") if not p.name.startswith("."))

    def read(self, group: str) -> GroupState:
        path = self.path(group)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return GroupState()
        except OSError as exc:
            raise corrupt(path, group, f"cannot read: {exc.strerror}") from None
        return decode_state(path, group, raw, self.num_partitions)

    @contextlib.contextmanager
    def locked(self, group: str) -> Iterator[Path]:
        """Hold the group's cross-process lock for a read-modify-write."""
        path = self.path(group)
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / f"{group}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            for stale in self.dir.glob(f".{group}.json.*.tmp"):  # left by a killed committer
                stale.unlink(missing_ok=True)
            yield path
        finally:
            os.close(fd)  # closing releases the flock

    def write(self, group: str, state: GroupState) -> None:
        write_atomic(self.path(group), encode_state(group, state))
