"""The closed loop's library half: the retrain cooldown.

On a Critical check the monitor asks :class:`RetrainCooldown` whether a retrain may be
requested now; if so it hands a :class:`~pipeline.drift.retrain.RetrainRequest` to the
requester its caller supplied (``flows/`` emits the Prefect event ``churn.drift.detected``
that the train deployment's trigger turns into a run). The cooldown lives in a small JSON
file under the data directory, so restarts and several stream workers share it: drift that
persists does not start a retrain per check (a retrain storm), and the train deployment's
``concurrency_limit=1`` is the second guard.

>>> from pipeline.clock import FakeClock
>>> import tempfile, pathlib
>>> clock = FakeClock()
>>> work = pathlib.Path(tempfile.mkdtemp())
>>> gate = RetrainCooldown(work / "cooldown.json", hours=24, clock=clock)
>>> gate.try_acquire("3"), gate.try_acquire("3")
(True, False)
>>> _ = clock.advance(24 * 3600); gate.try_acquire("3")
True
>>> import shutil; shutil.rmtree(work)
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path

from pipeline.clock import Clock, SystemClock

log = logging.getLogger(__name__)

# The last reason of a Critical run says whether it asked for a retrain (stored with the run).
RETRAIN_REQUESTED = "retrain requested"
RETRAIN_SKIPPED = "retrain not requested"


class RetrainCooldown:
    """At most one retrain request per ``hours`` (file-backed; ``hours=0``: no limit)."""

    def __init__(self, path: Path, hours: float, clock: Clock | None = None) -> None:
        self.path = Path(path)
        self.window = timedelta(hours=hours)
        self.clock = clock or SystemClock()

    def last(self) -> datetime | None:
        try:
            return datetime.fromisoformat(json.loads(self.path.read_text())["requested_at"])
        except (FileNotFoundError, KeyError, ValueError) as exc:
            if not isinstance(exc, FileNotFoundError):
                log.warning("unreadable retrain cooldown %s (%s): treating as none", self.path, exc)
            return None

    def remaining(self) -> timedelta:
        last = self.last()
        if last is None:
            return timedelta(0)
        return max(timedelta(0), last + self.window - self.clock.now())

    def try_acquire(self, model_version: str) -> bool:
        """True (and the cooldown restarts now) if no request was made within the window."""
        if self.remaining() > timedelta(0):
            return False
        self.start(model_version)
        return True

    def start(self, model_version: str, run: str | None = None) -> None:
        """The cooldown restarts now: call it once a retrain run was actually created."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"requested_at": self.clock.now().isoformat(), "model_version": model_version,
                                   "run": run}))
        tmp.replace(self.path)
