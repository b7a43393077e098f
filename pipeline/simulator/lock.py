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
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import SimulatorError
from pipeline.pidlock import PidLock

LOCK_NAME = "producer.lock"


class ProducerLockedError(SimulatorError):
    """Another process already produces from this simulator state."""


@contextlib.contextmanager
def producer_lock(sim_dir: Path) -> Iterator[None]:
    """Hold the exclusive producer lock of ``sim_dir``; refuse at once if it is taken."""
    sim_dir = Path(sim_dir)
    lock = PidLock(sim_dir / LOCK_NAME)
    if not lock.try_acquire():
        raise ProducerLockedError(
            f"another producer (pid {lock.holder()}) is already producing from {sim_dir}: two would "
            "emit every event twice. Stop it first, or give this one its own --data-dir"
        )
    try:
        yield
    finally:
        lock.release()
