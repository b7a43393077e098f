"""Drift scenarios: named, dated changes to the world the simulator generates.

Each scenario starts on ``drift_day`` (a simulated day index) and stays on. They are
meant to move the *feature* distributions measurably, not just a hidden parameter:

* ``price_increase``  - list prices +25 %: payment amounts rise, so do downgrades and
  cancellations (price is a churn driver).
* ``content_outage``  - the catalogue loses titles: fewer sessions (x0.75), shorter
  ones (x0.6), more playback/content tickets.
* ``device_shift``    - viewing moves to phones: the device mix shifts towards mobile,
  whose sessions are shorter, so watch time per session falls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import SimulatorError

DEVICES: tuple[str, ...] = ("tv", "mobile", "web", "tablet")
BASE_DEVICE_MIX = np.array([0.35, 0.35, 0.20, 0.10])
SHIFTED_DEVICE_MIX = np.array([0.08, 0.75, 0.07, 0.10])
# Watch-time multiplier by device: a TV session is long, a phone session short.
DEVICE_MINUTES = np.array([1.35, 0.5, 1.0, 0.9])

SCENARIOS: tuple[str, ...] = ("price_increase", "content_outage", "device_shift")


@dataclass(frozen=True)
class Effects:
    price_mult: float = 1.0
    session_mult: float = 1.0
    minutes_mult: float = 1.0
    ticket_add: float = 0.0
    device_mix: np.ndarray = field(default_factory=lambda: BASE_DEVICE_MIX)
    primary_device_p: float = 0.75


NO_DRIFT = Effects()


def check_scenario(name: str | None, drift_day: int | None) -> None:
    if name is None:
        if drift_day is not None:
            raise SimulatorError("--drift-day given without --drift; choose a scenario: " + ", ".join(SCENARIOS))
        return
    if name not in SCENARIOS:
        raise SimulatorError(f"unknown drift scenario {name!r}; choose one of: {', '.join(SCENARIOS)}")
    if drift_day is None or drift_day < 0:
        raise SimulatorError(f"drift scenario {name!r} needs --drift-day >= 0 (got {drift_day})")


def effects(name: str | None, drift_day: int | None, day: int) -> Effects:
    """The world's parameters on ``day`` under scenario ``name``."""
    if name is None or drift_day is None or day < drift_day:
        return NO_DRIFT
    if name == "price_increase":
        return Effects(price_mult=1.25)
    if name == "content_outage":
        return Effects(session_mult=0.75, minutes_mult=0.6, ticket_add=0.01)
    if name == "device_shift":
        return Effects(device_mix=SHIFTED_DEVICE_MIX, primary_device_p=0.25)
    raise SimulatorError(f"unknown drift scenario {name!r}")


@dataclass(frozen=True)
class CompressedTimeline:
    """A drift scenario on a compressed timescale, for demos and tests of the whole
    ground-truth loop (:func:`pipeline.testing.loop.closed_loop`): a 7-day label horizon
    instead of 30, so labels of post-drift users mature within a simulated month, and a
    history replayed as fast as the stream scores it (~100 simulated days in 2-4 minutes
    on two shared cores)."""

    drift: str = "content_outage"
    drift_day: int = 60
    days: int = 100
    users: int = 3_000  # 2,000 give ~60 churners in the gate's post-onset test window: too noisy
    horizon_days: int = 7
    retrain_after_days: int = 21  # labelled post-onset cutoffs for a daily retrain with its gaps
    min_churners: int = 30

    def __post_init__(self) -> None:
        check_scenario(self.drift, self.drift_day)
        if not self.drift_day + self.retrain_after_days + 2 * self.horizon_days < self.days:
            raise SimulatorError(f"a compressed timeline of {self.days} days cannot fit the drift on day "
                                 f"{self.drift_day}, a retrain {self.retrain_after_days} days later and two label "
                                 f"horizons of {self.horizon_days} days after it: simulate more days")


COMPRESSED = CompressedTimeline()
