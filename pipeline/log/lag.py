"""Consumer lag, the way Kafka and Burrow define it.

* **Lag** (Kafka): per partition, log-end offset minus committed offset. A partition
  the group never committed counts from the start offset (every stored record is lag
  for a new group) and shows CURRENT-OFFSET ``-``, like ``kafka-consumer-groups``.
* **Lag in seconds**: event time of the newest record minus event time of the last
  processed record (offset ``committed - 1``). Event times come from the records
  (``events.event_time``), not from a clock. A record without a valid ``ts`` is
  skipped by walking back a few records; if none has one the value is ``None``.
  With nothing processed yet, the first unprocessed record is the reference (so the
  figure is a lower bound).
* **Status** (Burrow's evaluator rules, ``linkedin/Burrow``
  ``core/internal/evaluator/caching.go``), over the window of recent commits:

  1. current lag 0 -> OK;
  2. STOP: time since the last commit exceeds the time the window spans (and at
     least ``min_stop_s``, our addition so one commit does not mean STOP at once);
  3. lag 0 at any commit in the window -> OK;
  4. REWIND: a committed offset went backwards;
  5. STALL: offsets did not move across the window (lag > 0);
  6. WARN: offsets move but the lag never decreased (the consumer is too slow);
  7. otherwise OK.

  0. PAST-END (ours, before all others): the committed offset lies past the log end.
     The log lost records the group had consumed (a truncated or replaced segment), and
     records appended at the reused offsets would be skipped: :func:`past_end_problem`
     says so in one line with the remedy (``churn lag`` prints it and exits 1).

  Burrow needs a full window before judging trends; here STALL/WARN need at least two
  commits. Burrow's extra "recent broker offsets show zero lag" check is omitted (we
  do not sample log-end offsets between commits). A never-committed partition is OK,
  as in Burrow (no offsets to judge).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pipeline.clock import Clock
from pipeline.errors import OffsetOutOfRangeError
from pipeline.events import event_time
from pipeline.log.base import CommitEntry, PartitionLog

WALK_BACK = 10
HEADERS = ("PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "LAG-SECONDS", "STATUS")


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    STALL = "STALL"
    STOP = "STOP"
    REWIND = "REWIND"
    PAST_END = "PAST-END"


@dataclass(frozen=True, slots=True)
class PartitionLag:
    partition: int
    current_offset: int | None  # None: the group never committed this partition
    log_end_offset: int
    start_offset: int
    lag: int
    lag_seconds: float | None
    status: Status

    def record(self) -> dict[str, int | float | str | None]:
        """The same as typed values (``churn lag --json``): offsets and lag as numbers,
        ``current_offset``/``lag_seconds`` null when unknown."""
        return {"partition": self.partition, "current_offset": self.current_offset,
                "log_end_offset": self.log_end_offset, "start_offset": self.start_offset, "lag": self.lag,
                "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
                "status": self.status.value}  # fmt: skip

    def row(self) -> dict[str, str]:
        """One ``kafka-consumer-groups --describe``-like row (strings, for tables)."""
        secs = "-" if self.lag_seconds is None else f"{self.lag_seconds:.0f}"
        cur = "-" if self.current_offset is None else str(self.current_offset)
        values = (
            str(self.partition),
            cur,
            str(self.log_end_offset),
            str(self.lag),
            secs,
            self.status.value,
        )
        return dict(zip(HEADERS, values, strict=True))


def evaluate_status(
    history: Sequence[CommitEntry], current_lag: int, now: datetime, *, min_stop_s: float = 60.0
) -> Status:
    """Burrow's partition status over ``history`` (oldest first). See module doc."""
    if current_lag <= 0 or not history:
        return Status.OK
    first, last = history[0], history[-1]
    since = (now - last.when).total_seconds()
    if since > max((last.when - first.when).total_seconds(), min_stop_s):
        return Status.STOP
    if any(c.lag == 0 for c in history):
        return Status.OK
    pairs = list(itertools.pairwise(history))
    if any(b.offset < a.offset for a, b in pairs):
        return Status.REWIND
    if len(history) < 2:
        return Status.OK
    if all(b.offset == a.offset for a, b in pairs):
        return Status.STALL
    if all(b.lag >= a.lag for a, b in pairs):
        return Status.WARN
    return Status.OK


def _time_near(
    log: PartitionLog, partition: int, offset: int, floor: int, ceil: int
) -> datetime | None:
    """Event time of the record at ``offset``, else of the nearest earlier ones (within
    ``WALK_BACK`` records, not below ``floor``), else of later ones below ``ceil``."""
    lo = max(floor, offset - WALK_BACK + 1)
    try:
        if offset >= lo:
            for rec in reversed(log.fetch(partition, lo, max_records=offset - lo + 1)):
                if (t := event_time(rec.value)) is not None:
                    return t
        for rec in log.fetch(partition, offset + 1, max_records=min(WALK_BACK, ceil - offset - 1)):
            if (t := event_time(rec.value)) is not None:
                return t
    except OffsetOutOfRangeError:  # retention moved the start meanwhile
        return None
    return None


def lag_seconds(
    log: PartitionLog, partition: int, position: int, start: int, end: int
) -> float | None:
    """Event-time lag of a consumer at ``position`` (next offset to read)."""
    if end <= position:
        return 0.0
    newest = _time_near(log, partition, end - 1, max(start, position), end)
    ref_offset = position - 1 if position - 1 >= start else max(position, start)
    ref_floor = start if ref_offset < position else ref_offset
    ref = _time_near(log, partition, ref_offset, ref_floor, end)
    if newest is None or ref is None:
        return None
    return max((newest - ref).total_seconds(), 0.0)


def describe_group(
    log: PartitionLog, group: str, clock: Clock, *, window: int = 10, min_stop_s: float = 60.0
) -> list[PartitionLag]:
    """Lag, lag in seconds and Burrow status of ``group`` on every partition."""
    committed = log.committed(group)
    history = log.commit_history(group)
    now = clock.now()
    out = []
    for p in range(log.num_partitions):
        info = log.partition_info(p)
        cur = committed.get(p)
        position = info.start_offset if cur is None else cur
        lag = max(info.end_offset - position, 0)
        past_end = cur is not None and cur > info.end_offset
        out.append(
            PartitionLag(
                partition=p,
                current_offset=cur,
                log_end_offset=info.end_offset,
                start_offset=info.start_offset,
                lag=lag,
                lag_seconds=lag_seconds(log, p, position, info.start_offset, info.end_offset),
                status=Status.PAST_END
                if past_end
                else evaluate_status(history.get(p, [])[-window:], lag, now, min_stop_s=min_stop_s),
            )
        )
    return out


def past_end_message(
    topic: str, group: str, partition: int, position: int, end: int, what: str = "resumes at"
) -> str:
    """One line: a group position past the log end, what it means and the two ways out."""
    return (
        f"group {group!r} {what} offset {position} of partition {partition} (topic {topic!r}), "
        f"but the log ends at {end}: {position - end} record(s) it consumed are gone from the log "
        f"(a truncated or replaced segment), and records appended at offsets {end}..{position - 1} "
        "would be skipped silently, so nothing was skipped. Restore the partition's segments "
        f"from a backup, or accept the loss with `churn lag --group {group} --reset-offsets "
        "latest` (the stream then resumes at the log end with the features it has)"
    )


def past_end_problem(topic: str, group: str, lags: Sequence[PartitionLag]) -> str | None:
    """The one line to show when a committed offset lies past the log end, else None."""
    bad = [x for x in lags if x.status is Status.PAST_END]
    if not bad:
        return None
    first = bad[0]
    assert first.current_offset is not None
    line = past_end_message(topic, group, first.partition, first.current_offset, first.log_end_offset,
                            "committed")  # fmt: skip
    if len(bad) > 1:
        line += f" (also partitions {[x.partition for x in bad[1:]]})"
    return line


def describe_rows(lags: Sequence[PartitionLag]) -> list[dict[str, str]]:
    """Rows with ``HEADERS`` keys for a ``kafka-consumer-groups --describe``-like table."""
    return [lag.row() for lag in lags]
