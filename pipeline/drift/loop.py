"""The closed loop's library half: a retrain cooldown, the drift event, the train trigger.

On a Critical check the monitor asks :class:`RetrainCooldown` whether a retrain may be
requested now; if so it emits the Prefect event ``churn.drift.detected`` (resource
``churn.model.<version>``) and the train deployment's trigger (:func:`train_trigger`)
starts a run. The cooldown lives in a small JSON file under the data directory, so
restarts and several stream workers share it: drift that persists does not start a
retrain per check (a retrain storm), and the train deployment's ``concurrency_limit=1``
is the second guard.

Prefect is imported only inside the functions (``pipeline`` stays importable and testable
without it); with no ``PREFECT_API_URL`` the emit is a logged no-op (otherwise Prefect
would start a temporary API server in this process, ~15-40 s).

>>> from pipeline.clock import FakeClock
>>> import tempfile, pathlib
>>> clock = FakeClock()
>>> gate = RetrainCooldown(pathlib.Path(tempfile.mkdtemp()) / "cooldown.json", hours=24, clock=clock)
>>> gate.try_acquire("3"), gate.try_acquire("3")
(True, False)
>>> _ = clock.advance(24 * 3600); gate.try_acquire("3")
True
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.clock import Clock, SystemClock

log = logging.getLogger(__name__)

DRIFT_EVENT = "churn.drift.detected"
RESOURCE_PREFIX = "churn.model."
# The last reason of a Critical run says whether it asked for a retrain (stored with the run).
RETRAIN_REQUESTED = "retrain requested"
RETRAIN_SKIPPED = "retrain not requested"

Emitter = Callable[[str, dict[str, str], dict[str, Any]], Any]  # (event, resource, payload)


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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"requested_at": self.clock.now().isoformat(), "model_version": model_version}))
        tmp.replace(self.path)
        return True


def prefect_emitter(event: str, resource: dict[str, str], payload: dict[str, Any]) -> Any:
    """Emit through Prefect if an API is configured, else log and return None."""
    from prefect.events import emit_event
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        log.info("no PREFECT_API_URL: not emitting %s for %s (payload %s)", event,
                 resource.get("prefect.resource.id"), payload)
        return None
    return emit_event(event=event, resource=resource, payload=payload)


def emit_drift_event(model_version: str, payload: Mapping[str, Any], emitter: Emitter | None = None) -> Any:
    """Emit ``churn.drift.detected`` for ``model_version`` (a failure is logged, not raised:
    the stream must keep scoring)."""
    resource = {"prefect.resource.id": f"{RESOURCE_PREFIX}{model_version}",
                "prefect.resource.name": f"churn v{model_version}", "churn.model.version": str(model_version)}
    try:
        return (emitter or prefect_emitter)(DRIFT_EVENT, resource, dict(payload))
    except Exception as exc:  # noqa: BLE001 - any emit failure is logged; scoring goes on
        log.warning("could not emit %s for model %s: %s: %s", DRIFT_EVENT, model_version, type(exc).__name__, exc)
        return None


def train_trigger(enabled: bool = True, parameters: dict[str, Any] | None = None) -> Any:
    """The train deployment's trigger: one run per ``churn.drift.detected`` event.

    ``train.to_deployment(..., triggers=[train_trigger()])``. Storms are prevented where
    the event is emitted (:class:`RetrainCooldown`) and by the deployment's
    ``concurrency_limit=1``.
    """
    from prefect.events import DeploymentEventTrigger

    return DeploymentEventTrigger(
        name="retrain-on-drift",
        description="Retrain when the stream reports critical drift of the champion's features.",
        enabled=enabled,
        expect={DRIFT_EVENT},
        match={"prefect.resource.id": f"{RESOURCE_PREFIX}*"},
        posture="Reactive",
        threshold=1,
        within=0,
        parameters=parameters,
    )
