"""When the next drift check is due: every N scored rows, every M minutes of the
monitor's clock, or (replaying) whenever event time enters a new UTC day.

Time is injected: ``rows`` and event days come from what was observed; minutes from the
``monotonic`` seconds the caller passes (its clock).

>>> c = Cadence(every_rows=100, every_minutes=10, per_event_day=False)
>>> c.start(0.0); c.add(99, day=0); c.due(60.0)
False
>>> c.add(1, day=0); c.due(60.0), c.reason
(True, '100 rows scored')
"""

from __future__ import annotations


class Cadence:
    def __init__(self, every_rows: int, every_minutes: float, per_event_day: bool) -> None:
        self.every_rows = every_rows
        self.every_s = every_minutes * 60.0
        self.per_event_day = per_event_day
        self.rows = 0  # rows observed since the last check
        self.since: float | None = None  # monotonic seconds of the last check (or start)
        self.day: int | None = None  # event day (days since epoch) the last check covered
        self.newest_day: int | None = None
        self.reason = ""
        self._reopened = ""  # reopen(): the next rows are due whatever the counts say ...
        self._reopen_rows = 0  # ... once there are this many

    def start(self, mono: float) -> None:
        self.since = mono

    def add(self, rows: int, day: int) -> None:
        self.rows += rows
        self.newest_day = day if self.newest_day is None else max(self.newest_day, day)
        if self.day is None:
            self.day = day

    def reopen(self, reason: str, rows: int = 1) -> None:
        """The next rows are due (``reason``), once there are ``rows`` of them, even within
        an event day already checked."""
        self._reopened, self._reopen_rows = reason, rows

    def due(self, mono: float) -> bool:
        if self.rows == 0:
            return False  # nothing new to look at
        if self._reopened and self.rows >= self._reopen_rows:
            self.reason = self._reopened
        elif self.rows >= self.every_rows:
            self.reason = f"{self.rows:,} rows scored"
        elif self.since is not None and mono - self.since >= self.every_s:
            self.reason = f"{(mono - self.since) / 60:.1f} min since the last check"
        elif self.per_event_day and self.newest_day is not None and self.day is not None and self.newest_day > self.day:
            self.reason = "event time entered a new day"
        else:
            return False
        return True

    def checked(self, mono: float) -> None:
        self._reopened = ""
        self.rows = 0
        self.since = mono
        self.day = self.newest_day
