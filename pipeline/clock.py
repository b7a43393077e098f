"""Injected time. Core logic reads event time; any "now" comes from a ``Clock``.

Only ``flows/`` and the CLI pass :class:`SystemClock`; tests pass :class:`FakeClock`.

>>> c = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
>>> c.advance(90).isoformat()
'2026-01-01T00:01:30+00:00'
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, for measuring durations."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("FakeClock start must be timezone-aware (e.g. tzinfo=UTC)")
        self._now = start.astimezone(UTC)
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
        return self._now
