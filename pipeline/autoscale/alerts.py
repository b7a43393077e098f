"""The dashboard's banner: Healthy / Warning / Critical, with the reasons.

Inputs are what the stream records: total lag (records), lag in seconds (event time
behind the log end), each partition's Burrow status (:class:`pipeline.log.lag.Status`),
and dead letters among the events of the recent window. The level is the worst of:

* lag and lag seconds against warning / critical thresholds (reached = that level);
* statuses: by default WARN (lag growing) is a warning, STALL (offsets not moving while
  lag > 0), STOP (no commits for longer than the window) and REWIND (committed offset
  went backwards) are critical -- as Burrow rates them;
* the dead-letter share, judged only over ``min_events`` or more events (one bad event
  among three is not a 33% error rate);
* no consumer running (when ``consumers`` is given): critical while there is lag, a
  warning at lag 0 (nothing would score the next event).

>>> assess(total_lag=70_000, lag_seconds=12.0, statuses=[Status.OK, Status.WARN])
Alert(level=<Level.WARNING: 'Warning'>, reasons=('lag 70,000 >= warning 50,000', 'partition 1 WARN: lag keeps growing'))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from pipeline.errors import ConfigError
from pipeline.log.lag import PartitionLag, Status


class Level(StrEnum):
    HEALTHY = "Healthy"
    WARNING = "Warning"
    CRITICAL = "Critical"

    @property
    def rank(self) -> int:
        return (Level.HEALTHY, Level.WARNING, Level.CRITICAL).index(self)


STATUS_TEXT = {
    Status.WARN: "lag keeps growing",
    Status.STALL: "committed offset not moving while lag > 0",
    Status.STOP: "no commits for longer than the evaluation window",
    Status.REWIND: "committed offset went backwards",
    Status.PAST_END: "committed offset past the log end (the log lost records; see `churn lag`)",
}


@dataclass(frozen=True, slots=True)
class AlertThresholds:
    lag_warning: int = 50_000
    lag_critical: int = 500_000
    lag_seconds_warning: float = 60.0
    lag_seconds_critical: float = 600.0
    dead_letter_share_warning: float = 0.001
    dead_letter_share_critical: float = 0.01
    min_events: int = 1_000
    warning_statuses: frozenset[Status] = field(default=frozenset({Status.WARN}))
    critical_statuses: frozenset[Status] = field(
        default=frozenset({Status.STALL, Status.STOP, Status.REWIND, Status.PAST_END})
    )

    def __post_init__(self) -> None:
        pairs = {
            "lag": (self.lag_warning, self.lag_critical),
            "lag_seconds": (self.lag_seconds_warning, self.lag_seconds_critical),
            "dead_letter_share": (self.dead_letter_share_warning, self.dead_letter_share_critical),
        }
        bad = [k for k, (w, c) in pairs.items() if not (0 < w <= c)]
        if bad or self.min_events < 1 or self.dead_letter_share_critical > 1:
            raise ConfigError(
                f"invalid alert thresholds for {', '.join(bad) or 'min_events/share'}: need "
                "0 < warning <= critical, shares <= 1 and min_events >= 1"
            )
        if self.warning_statuses & self.critical_statuses:
            raise ConfigError(
                f"statuses {sorted(self.warning_statuses & self.critical_statuses)} are both "
                "warning and critical: list each status once"
            )


@dataclass(frozen=True, slots=True)
class Alert:
    level: Level
    reasons: tuple[str, ...]  # worst first; for Healthy, a one-line summary


def _graded(value: float, warn: float, crit: float) -> Level:
    return Level.CRITICAL if value >= crit else Level.WARNING if value >= warn else Level.HEALTHY


def assess(
    *,
    total_lag: int,
    lag_seconds: float | None,
    statuses: Mapping[int, Status] | Sequence[Status] = (),
    dead_letters: int = 0,
    events: int = 0,
    consumers: int | None = None,
    thresholds: AlertThresholds | None = None,
) -> Alert:
    """The banner level and its reasons (``statuses`` by partition, or in partition order)."""
    th = thresholds or AlertThresholds()
    found: list[tuple[Level, str]] = []
    lvl = _graded(total_lag, th.lag_warning, th.lag_critical)
    if lvl is not Level.HEALTHY:
        limit = th.lag_critical if lvl is Level.CRITICAL else th.lag_warning
        found.append((lvl, f"lag {total_lag:,} >= {lvl.value.lower()} {limit:,}"))
    if lag_seconds is not None:
        lvl = _graded(lag_seconds, th.lag_seconds_warning, th.lag_seconds_critical)
        if lvl is not Level.HEALTHY:
            limit = th.lag_seconds_critical if lvl is Level.CRITICAL else th.lag_seconds_warning
            found.append(
                (lvl, f"{lag_seconds:,.0f} s behind >= {lvl.value.lower()} {limit:,.0f} s")
            )
    by_part = dict(statuses) if isinstance(statuses, Mapping) else dict(enumerate(statuses))
    for status in Status:
        parts = sorted(p for p, s in by_part.items() if Status(s) is status)
        lvl = (
            Level.CRITICAL if status in th.critical_statuses
            else Level.WARNING if status in th.warning_statuses
            else Level.HEALTHY
        )  # fmt: skip
        if parts and lvl is not Level.HEALTHY:
            label = "partition" if len(parts) == 1 else "partitions"
            text = STATUS_TEXT.get(status, status.value)
            found.append((lvl, f"{label} {', '.join(map(str, parts))} {status.value}: {text}"))
    if events >= th.min_events:
        share = dead_letters / events
        lvl = _graded(share, th.dead_letter_share_warning, th.dead_letter_share_critical)
        if lvl is not Level.HEALTHY:
            limit = (th.dead_letter_share_critical if lvl is Level.CRITICAL
                     else th.dead_letter_share_warning)  # fmt: skip
            found.append((lvl, f"dead letters {share:.2%} of {events:,} events >= "
                               f"{lvl.value.lower()} {limit:.2%}"))  # fmt: skip
    if consumers == 0 and total_lag > 0:
        found.append((Level.CRITICAL, f"no consumer running while lag is {total_lag:,}"))
    elif consumers == 0:  # lag 0 now, but nothing would score the next event: not Healthy
        found.append((Level.WARNING, "no consumer running: new events will not be scored"))
    if not found:
        behind = "" if lag_seconds is None else f", {lag_seconds:,.0f} s behind"
        return Alert(Level.HEALTHY, (f"lag {total_lag:,}{behind}; partitions OK",))
    found.sort(key=lambda f: -f[0].rank)  # stable: worst first, then in the order above
    return Alert(found[0][0], tuple(text for _, text in found))


def assess_partitions(
    lags: Sequence[PartitionLag],
    *,
    dead_letters: int = 0,
    events: int = 0,
    consumers: int | None = None,
    thresholds: AlertThresholds | None = None,
) -> Alert:
    """:func:`assess` from ``describe_group`` rows: summed lag, the worst lag seconds."""
    seconds = [p.lag_seconds for p in lags if p.lag_seconds is not None]
    return assess(
        total_lag=sum(p.lag for p in lags),
        lag_seconds=max(seconds) if seconds else None,
        statuses={p.partition: p.status for p in lags},
        dead_letters=dead_letters,
        events=events,
        consumers=consumers,
        thresholds=thresholds,
    )
