"""What the autoscaler drives: a controller the supervisor implements, and one step.

The supervisor owns the worker processes; it implements :class:`ScaleController`
(how many consumers run now, start/stop some), and calls :func:`autoscale_step` on
its own schedule (e.g. every 15 s, KEDA's default polling interval), recording the
returned decision in the store (``store.record_decision(**decision.as_record())``).
After ``scale_to(n)`` it rebalances with :func:`pipeline.autoscale.assign.sticky_assign`
and ``store.replace_assignments``.

>>> from datetime import UTC, datetime
>>> from pipeline.autoscale.policy import AutoscalePolicy, PolicyConfig
>>> ctl = RecordingController(current=1)
>>> d = autoscale_step(AutoscalePolicy(PolicyConfig(lag_threshold=100)), ctl,
...                    datetime(2026, 1, 1, tzinfo=UTC), {0: 150, 1: 90, 2: 0})
>>> ctl.current(), ctl.calls
(3, [(3, 'scale up 1 -> 3: lag 240 / 100 per consumer -> 3')])
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol, runtime_checkable

from pipeline.autoscale.policy import Action, AutoscalePolicy, Decision


@runtime_checkable
class ScaleController(Protocol):
    def current(self) -> int:
        """Consumers running now (as the supervisor sees them)."""
        ...

    def scale_to(self, n: int, reason: str) -> None:
        """Run ``n`` consumers (start or stop some, then rebalance partitions)."""
        ...


def autoscale_step(
    policy: AutoscalePolicy,
    controller: ScaleController,
    now: datetime,
    lags: Mapping[int, int],
) -> Decision:
    """Decide for the controller's current count and apply a change if there is one."""
    decision = policy.decide(now, controller.current(), lags)
    if decision.action is not Action.HOLD:
        controller.scale_to(decision.desired, decision.reason)
    return decision


class RecordingController:
    """A test double: holds a count and records every ``scale_to`` call."""

    def __init__(self, current: int = 1) -> None:
        self._current = current
        self.calls: list[tuple[int, str]] = []

    def current(self) -> int:
        return self._current

    def scale_to(self, n: int, reason: str) -> None:
        self.calls.append((n, reason))
        self._current = n
