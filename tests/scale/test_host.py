"""Stand-alone worker hosts (`churn stream-worker`, pipeline.stream.host) on Kafka (the mock
cluster) + PostgreSQL (a fresh database per test) + an MLflow registry, in this process:

* two hosts share the group by membership and leases and end equal to one uninterrupted
  single-host run, row for row, with no data directory shared;
* a host whose lease was taken over is fenced: its checkpoint is refused, it drops the
  partition, and the new owner's checkpoint stands;
* no champion: fail closed, one line, recorded in ``stream_host_events``, nothing scored;
* missing or wrong settings: one clear line each.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.clock import FakeClock
from pipeline.errors import ConfigError, StreamError
from pipeline.log.kafka import KafkaLog
from pipeline.store import Store
from pipeline.stream.config import StreamConfig, StreamPaths
from pipeline.stream.drift_hook import read_reference
from pipeline.stream.host import HostSettings, RegistryFeed, run_host
from pipeline.stream.state_pg import PgStateBackend
from pipeline.stream.worker import Worker
from tests.stream.helpers import scores

from .conftest import PARTITIONS, kafka_topic

FAST = {"group": "test", "batch_size": 100, "max_wait_s": 0.05, "flush_interval_s": 0.1,
        "heartbeat_interval_s": 0.3, "metrics_interval_s": 1.0, "checkpoint_interval_s": 0.5}


def host_settings(mock, topic: str, store_url: str, registry_uri: str, tmp_path, name: str, **kw) -> HostSettings:
    return HostSettings(topic=topic, kafka_bootstrap=mock.bootstrap, store_url=store_url, tracking_uri=registry_uri,
                        stream=StreamConfig(**FAST), log={"kafka_timeout_s": 10.0}, cache_dir=tmp_path / name,
                        lease_ttl_s=kw.pop("lease_ttl_s", 3.0), member=name, **kw)  # fmt: skip


def test_two_hosts_share_the_group_and_equal_one_uninterrupted_run(tmp_path, mock, pg_db, registry_uri, history):
    values, want, offsets = history
    topic = kafka_topic(mock, values)
    out: dict[str, object] = {}
    stop = threading.Event()

    def run(name: str) -> None:
        try:
            s = host_settings(mock, topic, pg_db, registry_uri, tmp_path, name)
            out[name] = run_host(s, stop.is_set, max_seconds=120)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            out[name] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in ("host-a", "host-b")]
    for t in threads:
        t.start()
    state = PgStateBackend(pg_db, topic, "test", owner="observer")
    try:
        with KafkaLog(mock.bootstrap, topic, PARTITIONS, create=False) as log:
            deadline = datetime.now(UTC) + timedelta(seconds=120)
            owners: dict = {}
            # caught up, and every lease held (on a loaded machine a 3 s lease can lapse and
            # be taken over: wait for the group to settle rather than sample a handover)
            while datetime.now(UTC) < deadline and (log.committed("test") != offsets
                                                    or None in owners.values() or len(owners) < PARTITIONS):
                threading.Event().wait(0.3)
                owners = {p: o for p, (o, _e, _x) in state.owners().items()}
            committed = log.committed("test")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    for name in ("host-a", "host-b"):
        assert not isinstance(out[name], BaseException), out[name]
    assert committed == offsets
    assert sorted(owners.values()) == ["host-a", "host-a", "host-b", "host-b"]  # fair shares
    ck = {p: state.read(p).meta.next_offset for p in range(PARTITIONS)}
    assert ck == offsets
    assert all(o is None for o, _e, _x in state.owners().values())  # released on the way out
    state.close()
    with Store(pg_db) as store:
        pd.testing.assert_frame_equal(scores(store), want)
    assert not any((tmp_path / n / "stream" / "test" / "checkpoints").exists() for n in ("host-a", "host-b"))


def test_a_fenced_worker_drops_the_partition_and_its_checkpoint_is_refused(tmp_path, mock, pg_db, registry_uri,
                                                                          history, caplog):
    values, _want, _offsets = history
    topic = kafka_topic(mock, values)
    clock = FakeClock(datetime(2026, 1, 2, tzinfo=UTC))
    cfg = StreamConfig(group="test", batch_size=100, max_wait_s=0.0, checkpoint_interval_s=3600)
    paths = StreamPaths(tmp_path / "a", "test")
    ref = RegistryFeed(registry_uri, paths, cfg, logging.getLogger("test")).fetch()
    # the registry's reference sample travels with the export: the worker's drift checks need it
    assert len(read_reference(Path(ref.path))) == 300
    pb = StreamPaths(tmp_path / "b", "test")
    RegistryFeed(registry_uri, pb, cfg, logging.getLogger("test")).fetch()
    sa = PgStateBackend(pg_db, topic, "test", owner="a", lease_ttl_s=5, clock=clock)
    sb = PgStateBackend(pg_db, topic, "test", owner="b", lease_ttl_s=5, clock=clock)
    with KafkaLog(mock.bootstrap, topic, PARTITIONS, create=False) as log, Store(pg_db) as store:
        a = Worker("a", log, store, paths, cfg, partitions=[0], state=sa)
        a.run(max_seconds=0.0)  # takes partition 0 at epoch 1 ... and shuts down: released
        a = Worker("a", log, store, paths, cfg, partitions=[0], state=sa)
        a.check_model()
        a.sync_assignment()
        assert a.parts[0].lease.held
        while a.step():
            if a.parts[0].position > 500:
                break
        a.checkpoint(a.parts[0])
        a.writer.flush()
        first = sa.read(0).meta.next_offset
        assert first > 0
        epoch_a = a.parts[0].lease.epoch
        clock.advance(6)  # a's lease expired (a paused: GC, network)
        b = Worker("b", log, store, pb, cfg, partitions=[0], state=sb)
        b.check_model()
        b.sync_assignment()
        assert b.parts[0].position == first  # restored from a's checkpoint, in PostgreSQL
        a.step()  # a still believes it owns partition 0
        with caplog.at_level(logging.WARNING, logger="pipeline.stream"):
            a.checkpoint(a.parts[0])
            a.writer.flush()
        assert "refused" in caplog.text
        assert sb.read(0).epoch == epoch_a and sb.read(0).meta.next_offset == first  # a's stale write did not land
        assert not a.parts[0].lease.held
        a.release(0)  # gives it up without a checkpoint
        assert "lost partition 0's lease" in caplog.text
        b.run(until_caught_up=True)
        assert sb.read(0).epoch == epoch_a + 1 and sb.read(0).meta.next_offset == len(values[0])
        a.shutdown()
    sa.close()
    sb.close()


def test_the_host_owning_the_leader_partition_checks_drift_into_the_store(tmp_path, mock, pg_db, registry_uri,
                                                                           history):
    """`churn stream-worker` with drift on: its leader checks the stream against the
    registry champion's reference (exported with it) and the runs land in the shared store."""
    values, want, offsets = history
    topic = kafka_topic(mock, values)
    # 30 simulated days of 400 users: checks after a week, on windows of ~100-150 users
    drift = {"warmup_days": 7, "min_rows": 50, "executor": "thread", "full_report_every": 0}
    s = host_settings(mock, topic, pg_db, registry_uri, tmp_path, "host-a", drift=drift)
    observer = Store(pg_db)
    log = KafkaLog(mock.bootstrap, topic, PARTITIONS, create=False)
    last = [0.0]

    def done() -> bool:  # checks run beside the stream (a thread here): stop once caught up and one is recorded
        if time.monotonic() - last[0] < 0.5:
            return False
        last[0] = time.monotonic()
        return log.committed("test") == offsets and len(observer.drift_runs(status=None)) > 0

    try:
        summary = run_host(s, done, max_seconds=240)
        runs = observer.drift_runs(status=None)
    finally:
        observer.close()
        log.close()
    assert summary["events"] == sum(len(v) for v in values.values())
    with Store(pg_db) as store:
        pd.testing.assert_frame_equal(scores(store), want)  # drift checks change no score
    assert len(runs) >= 1 and set(runs["source"]) == {"host-a"} and set(runs["model_version"]) == {"1"}
    # a check on the reference it was exported with, or one that says why it could not run
    assert set(runs["status"]) <= {"checked", "skipped"}, runs[["status", "status_reason"]]
    assert (runs["status"] == "checked").any(), runs[["status", "status_reason"]]


def test_no_champion_fails_closed_and_is_recorded(tmp_path, mock, pg_db, history):
    values, _want, _offsets = history
    topic = kafka_topic(mock, {p: v[:50] for p, v in values.items()})
    empty = f"sqlite:///{tmp_path / 'empty' / 'mlflow.db'}"
    from pipeline import registry

    registry.configure(empty)
    s = host_settings(mock, topic, pg_db, empty, tmp_path, "host-a")
    with pytest.raises(StreamError, match="no champion model.*Nothing was scored"):
        run_host(s)
    state = PgStateBackend(pg_db, topic, "test", owner="observer")
    events = state.events()
    state.close()
    assert len(events) == 1 and events[0][0] == "host-a" and "no champion model" in events[0][2]
    with Store(pg_db) as store:
        assert len(store.current_scores(top_k=None, active_only=False)) == 0


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        ([], {}, "needs the Kafka cluster: set CHURN_KAFKA_BOOTSTRAP"),
        (["--kafka-bootstrap", "127.0.0.1:9"], {}, "needs the PostgreSQL store: set CHURN_STORE_URL"),
        (["--kafka-bootstrap", "127.0.0.1:9", "--store-url", "sqlite:///x.db"], {}, "needs a PostgreSQL store URL"),
        ([], {"CHURN_KAFKA_BOOTSTRAP": "127.0.0.1:9", "CHURN_STORE_URL": "postgresql+psycopg://u@127.0.0.1:9/x"},
         "needs the MLflow tracking server"),
        (["--kafka-bootstrap", "h:9", "--store-url", "postgresql://h/x", "--tracking-uri", "http://h",
          "--lease-ttl", "0.5"], {}, "must exceed twice the heartbeat interval"),
    ],
)
def test_stream_worker_says_which_setting_is_missing_or_wrong(tmp_path, args, env, says):
    from churn.cli.app import app

    base = {"CHURN_KAFKA_BOOTSTRAP": "", "CHURN_STORE_URL": "", "CHURN_MLFLOW_TRACKING_URI": ""}
    result = CliRunner().invoke(app, ["--data-dir", str(tmp_path), "stream-worker", *args], env=base | env)
    assert result.exit_code == 1, result.output
    assert says in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_host_settings_check_is_one_line_config_error():
    with pytest.raises(ConfigError, match="lease-ttl"):
        HostSettings("t", "h:9", "postgresql://h/x", "http://h", lease_ttl_s=0).check()


def test_a_damaged_champion_version_is_refused_and_the_host_keeps_its_model(tmp_path):
    """A version whose files cannot be read: the champion follower logged "champion poll
    failed (will retry)" with the parser's error at every poll; now it is refused once,
    with the version and the remedy, like a feature-spec mismatch."""
    import mlflow

    from pipeline import registry
    from pipeline.errors import ModelUnreadableError
    from pipeline.testing.registry import register_tiny_champion

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert register_tiny_champion(uri) == "1"
    paths = StreamPaths(tmp_path / "cache", "test")
    feed = RegistryFeed(uri, paths, StreamConfig(**FAST), logging.getLogger("test"))
    assert feed.fetch().version == "1"
    assert register_tiny_champion(uri, seed=2) == "2"
    stored = Path(mlflow.MlflowClient().get_model_version_download_uri(registry.MODEL_NAME, "2").removeprefix("file://"))
    (stored / "model.ubj").write_bytes(b"\x00" * 64)  # a torn upload
    with pytest.raises(ModelUnreadableError, match="models:/churn/2: its model files cannot be read"):
        feed.fetch()
    assert feed.refused == "2" and feed.fetch().version == "1"  # refused until the alias moves; v1 stays
