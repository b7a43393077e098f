"""Dashboard banner levels from lag, lag seconds, Burrow statuses and dead letters."""

from __future__ import annotations

import pytest

from pipeline.autoscale import Alert, AlertThresholds, Level, assess, assess_partitions
from pipeline.errors import ConfigError
from pipeline.log.lag import PartitionLag, Status

OK, WARN, STALL, STOP, REWIND = Status.OK, Status.WARN, Status.STALL, Status.STOP, Status.REWIND

CASES = [
    # (kwargs, level, reasons)
    (dict(total_lag=1_200, lag_seconds=4.0, statuses=[OK, OK]), Level.HEALTHY,
     ("lag 1,200, 4 s behind; partitions OK",)),
    (dict(total_lag=0, lag_seconds=None), Level.HEALTHY, ("lag 0; partitions OK",)),
    (dict(total_lag=50_000, lag_seconds=1.0), Level.WARNING, ("lag 50,000 >= warning 50,000",)),
    (dict(total_lag=600_000, lag_seconds=1.0), Level.CRITICAL, ("lag 600,000 >= critical 500,000",)),
    (dict(total_lag=10, lag_seconds=61.0), Level.WARNING, ("61 s behind >= warning 60 s",)),
    (dict(total_lag=10, lag_seconds=900.0), Level.CRITICAL, ("900 s behind >= critical 600 s",)),
    (dict(total_lag=10, lag_seconds=1.0, statuses=[OK, WARN, WARN]), Level.WARNING,
     ("partitions 1, 2 WARN: lag keeps growing",)),
    (dict(total_lag=10, lag_seconds=1.0, statuses={3: STALL, 0: OK}), Level.CRITICAL,
     ("partition 3 STALL: committed offset not moving while lag > 0",)),
    (dict(total_lag=10, lag_seconds=1.0, statuses=[STOP, REWIND]), Level.CRITICAL,
     ("partition 0 STOP: no commits for longer than the evaluation window",
      "partition 1 REWIND: committed offset went backwards")),
    (dict(total_lag=0, lag_seconds=None, dead_letters=2, events=1_000), Level.WARNING,
     ("dead letters 0.20% of 1,000 events >= warning 0.10%",)),
    (dict(total_lag=0, lag_seconds=None, dead_letters=50, events=1_000), Level.CRITICAL,
     ("dead letters 5.00% of 1,000 events >= critical 1.00%",)),
    (dict(total_lag=0, lag_seconds=None, dead_letters=3, events=10), Level.HEALTHY,
     ("lag 0; partitions OK",)),  # too few events to judge a share
    (dict(total_lag=5, lag_seconds=None, consumers=0), Level.CRITICAL,
     ("no consumer running while lag is 5",)),
    (dict(total_lag=0, lag_seconds=None, consumers=0), Level.WARNING,  # nothing would score the next event
     ("no consumer running: new events will not be scored",)),
    (dict(total_lag=70_000, lag_seconds=700.0, statuses=[WARN]), Level.CRITICAL,
     ("700 s behind >= critical 600 s", "lag 70,000 >= warning 50,000",
      "partition 0 WARN: lag keeps growing")),  # worst first
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "level", "reasons"), CASES)
def test_levels(kwargs, level, reasons):
    assert assess(**kwargs) == Alert(level, reasons)


def test_custom_thresholds_and_status_levels():
    th = AlertThresholds(lag_warning=10, lag_critical=20, warning_statuses=frozenset({WARN, STALL}),
                         critical_statuses=frozenset({STOP}))  # fmt: skip
    got = assess(total_lag=15, lag_seconds=None, statuses=[STALL], thresholds=th)
    assert got.level is Level.WARNING and len(got.reasons) == 2
    with pytest.raises(ConfigError, match="lag"):
        AlertThresholds(lag_warning=10, lag_critical=5)
    with pytest.raises(ConfigError, match="both warning and critical"):
        AlertThresholds(warning_statuses=frozenset({WARN}), critical_statuses=frozenset({WARN}))


def test_from_describe_group_rows():
    rows = [
        PartitionLag(0, 10, 110, 0, 100, 30.0, OK),
        PartitionLag(1, None, 60_000, 0, 60_000, None, OK),
        PartitionLag(2, 5, 5, 0, 0, 0.0, OK),
    ]
    got = assess_partitions(rows, dead_letters=0, events=5_000)
    assert got == Alert(Level.WARNING, ("lag 60,100 >= warning 50,000",))
    assert assess_partitions([]).level is Level.HEALTHY


def test_a_position_past_the_log_end_is_critical_never_healthy():
    alert = assess(total_lag=0, lag_seconds=0.0, statuses={2: Status.PAST_END}, consumers=1)
    assert alert.level is Level.CRITICAL
    assert any("past the log end" in r and "partition 2" in r for r in alert.reasons)
