"""An exclusive, non-blocking ``flock`` on a file that names its holder.

The one shape behind every "only one of these may run" rule on one host: the producer of a
simulator state, the supervisor of a consumer group, the worker of a partition. The kernel
drops the lock when the holder dies (even by SIGKILL), so a crash never blocks the next
one; the holder writes its pid into the file so a refusal can say who holds it.

>>> lock = PidLock(path)                              # doctest: +SKIP
>>> if not lock.try_acquire():
...     raise SomeError(f"already running (pid {lock.holder()})")
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class PidLock:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock (creating the file and its directory) or return False at once."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        with contextlib.suppress(OSError):  # who holds it, for refusals and people reading the file
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def holder(self) -> str:
        """The pid the holder wrote, or "?" if it cannot be read."""
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"


def holder_if_locked(path: Path | str) -> str | None:
    """Probe without creating anything: the holder's pid if someone holds ``path``'s lock,
    None if the file is absent or free (the probe's own momentary lock is dropped)."""
    probe = PidLock(path)
    if not probe.path.exists():
        return None
    if probe.try_acquire():
        probe.release()
        return None
    return probe.holder()
