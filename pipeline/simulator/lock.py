"""One producer per simulator state: an exclusive ``flock`` on ``<sim_dir>/producer.lock``.

Two producers continuing the same saved population would generate the same days twice
(every event id duplicated). The lock is taken before the state is read and held until
the producer stops; the kernel drops it when the process dies (even by SIGKILL), so a
crashed producer never blocks the next one.

>>> with producer_lock(sim_dir):                      # doctest: +SKIP
...     produce_live(sim_dir, log, rate=None, max_events=1000)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import SimulatorError

LOCK_NAME = "producer.lock"


class ProducerLockedError(SimulatorError):
    """Another process already produces from this simulator state."""


@contextlib.contextmanager
def producer_lock(sim_dir: Path) -> Iterator[None]:
    """Hold the exclusive producer lock of ``sim_dir``; refuse at once if it is taken."""
    sim_dir = Path(sim_dir)
    sim_dir.mkdir(parents=True, exist_ok=True)
    path = sim_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ProducerLockedError(
                f"another producer (pid {holder}) is already producing from {sim_dir}: two would "
                "emit every event twice. Stop it first, or give this one its own --data-dir"
            ) from None
        with contextlib.suppress(OSError):  # who holds it, for people reading the file
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing drops the flock
