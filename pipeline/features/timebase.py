"""What "at time t" means for features: integer microseconds and right-closed days.

All engine times are ``int`` microseconds since the Unix epoch (UTC), converted exactly
from the events' aware datetimes (no float rounding), so "events with ``ts <= t``" is an
exact test.

**Days are right-closed**: day ``d`` is the interval ``(d * DAY, (d + 1) * DAY]`` and an
instant's day is ``(us - 1) // DAY_US``. Why: a cutoff is normally a midnight, and features
"at t" must include every event with ``ts <= t`` and nothing else. With right-closed days
the calendar day that *ends* at a midnight cutoff is that cutoff's "as-of day", so a
W-day window at a midnight ``t`` is exactly the continuous interval ``(t - W days, t]``.
(With the usual left-closed days a midnight cutoff would open an empty "today" and every
window would silently lose a day.) An event stamped exactly ``00:00:00`` therefore
belongs to the day before; nothing else differs from calendar days.

At a time ``t`` that is not a midnight, the as-of day is the partial day containing ``t``
(events up to ``t`` in it); both the batch replay and the stream read it the same way.
Note for serving: training cutoffs are midnights (a full as-of day), so a vector read at
noon has W - 1 full days plus half a day in its W-day windows; counts run ~1/(2W) lower
on average (7 % for W = 7). Score at the last midnight, or train on non-midnight
cutoffs, if that skew matters.

>>> t = to_us(datetime(2026, 2, 1, tzinfo=UTC))
>>> day_of(t) == day_of(t - 1) == day_of(to_us(datetime(2026, 1, 31, 0, 0, 1, tzinfo=UTC)))
True
>>> from_us(day_end_us(day_of(t))) == datetime(2026, 2, 1, tzinfo=UTC)
True
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pipeline.errors import FeatureError

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
NONE_US = -(2**63)  # "never" for int64 time scalars (below every real time)


def to_us(t: datetime) -> int:
    """An aware datetime as exact integer microseconds since the epoch."""
    if t.tzinfo is None:
        raise FeatureError(f"time {t.isoformat()} has no time zone; pass an aware UTC datetime")
    return (t - EPOCH) // _US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))


def day_of(us: int) -> int:
    """The right-closed day containing ``us`` (see module docstring)."""
    return (us - 1) // DAY_US


def day_end_us(day: int) -> int:
    """The midnight that closes ``day`` (the largest instant belonging to it)."""
    return (day + 1) * DAY_US


def midnight_us(d: date) -> int:
    """00:00 UTC of calendar date ``d`` (which closes the previous right-closed day)."""
    return to_us(datetime(d.year, d.month, d.day, tzinfo=UTC))


def duration_us(td: timedelta) -> int:
    return td // _US
