"""Stream metrics, autoscaler decisions, worker assignments and pruning, on both backends."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pandas as pd
import pytest

from pipeline.errors import InvalidRowError, PartitionOwnedError
from pipeline.store import Store, StreamMetric
from tests.store.helpers import T0


def tick(minute: int, partition: int, lag: int, worker: str = "w0", **kw: object) -> StreamMetric:
    return StreamMetric(
        time=T0 + timedelta(minutes=minute),
        worker=worker,
        partition=partition,
        committed_offset=100 * minute,
        log_end_offset=100 * minute + lag,
        lag=lag,
        lag_seconds=lag / 10,
        status="OK",
        events=500,
        events_per_s=250.0,
        batch_p50_ms=12.0,
        batch_p95_ms=30.0,
        batch_p99_ms=45.5,
        dead_letters=1,
        model_version="4",
        **kw,  # type: ignore[arg-type]
    )


def test_metrics_round_trip_and_rerecording_is_a_no_op(store: Store):
    rows = [tick(m, p, lag=10 * m + p) for m in range(3) for p in range(2)]
    assert store.record_metrics(rows) == 6
    store.record_metrics(rows[:2])  # a retried write
    df = store.metrics_since()
    assert len(df) == 6
    first = df.iloc[0]
    assert first.time == pd.Timestamp(T0) and first.worker == "w0" and first.status == "OK"
    assert (first.lag, first.batch_p99_ms, first.model_version) == (0, 45.5, "4")
    assert str(df.time.dtype) == "datetime64[us, UTC]"
    assert len(store.metrics_since(T0 + timedelta(minutes=2))) == 2
    latest = store.latest_metrics()
    assert list(latest.partition) == [0, 1] and list(latest.lag) == [20, 21]
    assert store.record_metrics([]) == 0


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"time": datetime(2026, 1, 1)}, "metric time .*timezone-aware"),
        ({"worker": ""}, "metric worker"),
        ({"partition": -1}, "metric partition -1"),
        ({"lag": -5}, "metric lag=-5"),
        ({"lag_seconds": math.nan}, "metric lag_seconds=nan"),
        ({"status": "LATE"}, "metric status 'LATE'.*OK, WARN, STALL, STOP, REWIND"),
        ({"events": 1.5}, "metric events=1.5"),
    ],
)
def test_bad_metrics_are_rejected(change, match):
    base = dict(time=T0, worker="w0", partition=0, lag=3, lag_seconds=1.0, status="OK", events=2)
    with pytest.raises(InvalidRowError, match=match):
        StreamMetric(**{**base, **change})  # type: ignore[arg-type]


def test_decisions_round_trip(store: Store):
    store.record_decision(
        time=T0, current=1, desired=3, action="scale_up", reason="lag 30,000", recommended=3,
        total_lag=30_000,
    )  # fmt: skip
    store.record_decision(time=T0 + timedelta(seconds=30), current=3, desired=3, action="hold",
                          reason="within tolerance")  # fmt: skip
    store.record_decision(time=T0, current=1, desired=3, action="scale_up", reason="again")
    df = store.decisions_since()
    assert list(df.action) == ["scale_up", "hold"] and list(df.reason)[0] == "lag 30,000"
    assert df.total_lag.iloc[0] == 30_000 and pd.isna(df.total_lag.iloc[1])
    assert len(store.decisions_since(T0 + timedelta(seconds=1))) == 1
    with pytest.raises(InvalidRowError, match="counts must be >= 0"):
        store.record_decision(time=T0, current=-1, desired=0, action="hold", reason="x")


def test_assignments_are_exclusive(store: Store, clock):
    store.set_assignment("w0", [0, 1], pid=101, generation=1)
    store.set_assignment("w1", [2, 3], pid=102, generation=1)
    with pytest.raises(PartitionOwnedError, match="partition 1 is owned by worker 'w0'"):
        store.set_assignment("w1", [1, 2, 3], generation=2)
    assert store.heartbeat("w1") == (2, 3)  # the failed call changed nothing
    store.set_assignment("w0", [0], generation=2)  # revoke first ...
    store.set_assignment("w1", [1, 2, 3], generation=2)  # ... then assign
    df = store.assignments()
    assert list(zip(df.worker_id, df.partitions, df.pid, strict=True)) == [
        ("w0", (0,), 101), ("w1", (1, 2, 3), 102),
    ]  # fmt: skip
    with pytest.raises(InvalidRowError, match="repeat"):
        store.set_assignment("w2", [4, 4])


def test_replace_assignments_and_heartbeats(store: Store, clock):
    store.replace_assignments({"w0": [0, 1], "w1": [2, 3]}, generation=1, pids={"w0": 7})
    started = store.assignments().set_index("worker_id").started_at
    clock.advance(30)
    assert store.heartbeat("w0") == (0, 1)
    store.replace_assignments({"w0": [0], "w1": [1], "w2": [2, 3]}, generation=2)
    df = store.assignments().set_index("worker_id")
    assert df.partitions.to_dict() == {"w0": (0,), "w1": (1,), "w2": (2, 3)}
    assert (df.generation == 2).all()
    assert df.started_at["w0"] == started["w0"]  # an existing worker keeps its start time
    assert df.heartbeat_age_s.to_dict() == {"w0": 0.0, "w1": 0.0, "w2": 0.0}
    clock.advance(12)
    assert store.assignments().heartbeat_age_s.tolist() == [12.0, 12.0, 12.0]
    store.replace_assignments({"w0": [0, 1, 2, 3]}, generation=3)
    assert store.heartbeat("w1") is None  # removed by the rebalance: it must stop
    with pytest.raises(PartitionOwnedError, match="partition 1 is given to both 'a' and 'b'"):
        store.replace_assignments({"a": [0, 1], "b": [1]}, generation=4)
    store.clear_assignment("w0")
    assert store.assignments().empty and store.heartbeat("w0") is None


def test_prune_deletes_old_rows_only(store: Store):
    store.record_metrics([tick(m, 0, lag=1) for m in range(5)])
    store.record_decision(time=T0, current=1, desired=1, action="hold", reason="r")
    store.append_score_history(
        [{"user_id": "u", "risk": 0.1, "model_version": "1", "features_time": T0}]
    )
    out = store.prune(T0 + timedelta(minutes=3))
    assert out == {"score_history": 1, "stream_metrics": 3, "autoscale_decisions": 1}
    assert len(store.metrics_since()) == 2
