"""The stream on the Kafka backend, against librdkafka's mock cluster started in this
process; the worker processes connect to its 127.0.0.1 listener.

* End to end: a simulated history produced into a Kafka topic, the supervised group of
  worker processes streams it until caught up; scores and feature state equal an
  uninterrupted in-process run over the same history on the file backend, the group's
  offsets are committed to Kafka, and `churn lag` on Kafka shows no lag.
* SIGKILL at random moments on Kafka: the same equality (exactly-once effect).
* Log plumbing: what the supervisor hands its workers, the clear "no topic" errors.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.errors import LogError
from pipeline.log import dead_letter_log, parse_dead_letter
from pipeline.log.kafka import KafkaLog
from pipeline.log.kafka_config import log_config
from pipeline.store import Store
from pipeline.stream.champion import StaticChampion
from pipeline.stream.config import StreamConfig, StreamPaths
from pipeline.stream.model import export_model, publish
from pipeline.stream.supervisor import Supervisor
from pipeline.stream.worker import Worker
from pipeline.testing.kafka import MockCluster
from pipeline.testing.stream import simulated_log, tiny_model

from .helpers import append_bad_events, run_in_thread, scores, sigkill_workers_mid_run, states

BATCH = 100
PARTITIONS = 4
KILLS = 3
_ids = itertools.count()


@pytest.fixture(scope="module")
def mock():
    with MockCluster() as m:
        if not m.exact_partitions:
            pytest.skip("needs librdkafka's C mock API for 4-partition topics plus a .dlq")
        yield m


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def history(tmp_path_factory, model):
    """A 4-partition file log (~21k events, 3 bad ones in partition 2) and the reference:
    one uninterrupted in-process worker over it (file backend)."""
    root = tmp_path_factory.mktemp("kafka-history")
    log = simulated_log(root / "ref" / "log", users=500, days=40, partitions=PARTITIONS, seed=9)
    append_bad_events(log, 2)
    paths = StreamPaths(root / "ref", "test")
    from pipeline.features.registry import FEATURE_SET_VERSION

    publish(paths.champion, export_model(model, "1", FEATURE_SET_VERSION, paths.models))
    with Store(f"sqlite:///{root / 'ref.db'}") as store:
        cfg = StreamConfig(
            group="test", batch_size=BATCH, max_wait_s=0.0, checkpoint_interval_s=3600
        )
        Worker("ref", log, store, paths, cfg, partitions=range(PARTITIONS)).run(
            until_caught_up=True
        )
        want = scores(store)
    values = {p: [r.value for r in log.iter_records(p, 0)] for p in range(PARTITIONS)}
    ref_states = states(paths, log)
    log.close()
    return values, want, ref_states


def kafka_topic(mock: MockCluster, values: dict[int, list[bytes]]) -> KafkaLog:
    """A fresh topic (and its .dlq) holding ``values`` at the same partitions and offsets."""
    topic = f"events-{next(_ids)}"
    mock.create_topic(topic, PARTITIONS)
    mock.create_topic(f"{topic}.dlq", PARTITIONS)
    log = KafkaLog(mock.bootstrap, topic, PARTITIONS, create=False)
    for p, vals in values.items():
        for i in range(0, len(vals), 2_000):
            log.append(p, vals[i : i + 2_000])
    assert [log.end_offset(p) for p in range(PARTITIONS)] == [len(values[p]) for p in values]
    return log


def supervisor(tmp_path: Path, mock: MockCluster, topic: str, model, **cfg) -> Supervisor:
    champion = StaticChampion()
    champion.set(model, "1")
    base = {
        "group": "test",
        "batch_size": BATCH,
        "max_wait_s": 0.05,
        "flush_interval_s": 0.1,
        "heartbeat_interval_s": 0.5,
        "metrics_interval_s": 1.0,
        "drain_timeout_s": 30.0,
        "autoscale": False,
    }
    conf = {"log_backend": "kafka", "kafka_bootstrap": mock.bootstrap, "kafka_timeout_s": 10.0}
    return Supervisor(tmp_path / "data", topic, f"sqlite:///{tmp_path / 'churn.db'}", champion,
                      StreamConfig(**(base | cfg)), log_config=conf)  # fmt: skip


def dead_letter_offsets(log: KafkaLog) -> list[int]:
    with dead_letter_log(log) as dlq:
        return [parse_dead_letter(r.value).source_offset for r in dlq.iter_records(2, 0)]


@pytest.mark.slow
def test_stream_on_kafka_end_to_end_equals_the_file_backend(tmp_path, mock, history, model):
    values, want_scores, want_states = history
    log = kafka_topic(mock, values)
    ends = {p: len(values[p]) for p in range(PARTITIONS)}
    before = lag_rows(tmp_path, mock, log.name)  # `churn lag` on Kafka, nothing consumed yet
    assert [(r["current_offset"], r["lag"]) for r in before] == [(None, ends[p]) for p in range(PARTITIONS)]
    assert all(r["lag_seconds"] > 30 * 86400 for r in before)  # ~40 days of events
    sup = supervisor(tmp_path, mock, log.name, model, workers=2, checkpoint_interval_s=1.0)
    try:
        summary = sup.run(until_caught_up=True, max_seconds=120)
    finally:
        sup.log.close()
    assert summary["stopped"] == "caught up" and summary["total_lag"] == 0
    assert summary["events"] == sum(ends.values())
    pd.testing.assert_frame_equal(scores(sup.store), want_scores)
    assert states(sup.paths, log) == want_states
    assert log.committed("test") == ends  # committed to Kafka's group coordinator
    assert not (tmp_path / "data" / "log").exists()  # nothing read from or written to files
    assert sorted(dead_letter_offsets(log)) == [ends[2] - 3, ends[2] - 2, ends[2] - 1]

    rows = lag_rows(tmp_path, mock, log.name)
    assert [
        (r["current_offset"], r["log_end_offset"], r["lag"], r["lag_seconds"]) for r in rows
    ] == [(ends[p], ends[p], 0, 0) for p in range(PARTITIONS)]
    log.close()


def lag_rows(tmp_path: Path, mock: MockCluster, topic: str) -> list[dict]:
    """`churn lag --group test --json` with the Kafka backend configured by environment."""
    import json

    from churn.cli.app import app

    env = {"CHURN_LOG_BACKEND": "kafka", "CHURN_KAFKA_BOOTSTRAP": mock.bootstrap}
    args = [
        "--data-dir",
        str(tmp_path / "data"),
        "--topic",
        topic,
        "lag",
        "--group",
        "test",
        "--json",
    ]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.slow
def test_sigkill_on_kafka_ends_equal_to_an_uninterrupted_run(tmp_path, mock, history, model):
    values, want_scores, want_states = history
    log = kafka_topic(mock, values)
    sup = supervisor(tmp_path, mock, log.name, model, workers=2, checkpoint_interval_s=0.3,
                     max_events_per_s=1_500.0)  # fmt: skip
    th, out = run_in_thread(sup, until_caught_up=True, max_seconds=150)
    try:
        kills = sigkill_workers_mid_run(sup, th, log, "test", lambda p: len(values[p]), KILLS, seed=23)
    finally:
        th.join(timeout=180)
        sup.log.close()
    assert not th.is_alive() and "error" not in out, out.get("error")
    summary = out["summary"]
    assert kills == KILLS and summary["restarts"] == KILLS and summary["stopped"] == "caught up"
    assert summary["total_lag"] == 0
    pd.testing.assert_frame_equal(scores(sup.store), want_scores)
    assert states(sup.paths, log) == want_states  # feature state byte for byte, offsets equal
    assert log.committed("test") == {p: len(values[p]) for p in range(PARTITIONS)}
    dead = dead_letter_offsets(log)
    assert len(dead) == len(set(dead)) == 3  # replays did not dead-letter twice
    log.close()


def test_workers_get_the_backend_and_properties_stay_off_the_command_line(
    tmp_path, mock, monkeypatch
):
    """The WorkerSpec carries backend and bootstrap; librdkafka properties (credentials)
    go through the worker's environment, and the worker opens the same Kafka topic."""
    import json
    import subprocess

    from pipeline.config import Settings
    from pipeline.log.kafka_config import open_log_config
    from pipeline.stream.worker import WorkerSpec

    topic = f"spec-{next(_ids)}"
    mock.create_topic(topic, 2)
    mock.create_topic(f"{topic}.dlq", 2)
    settings = Settings(data_dir=tmp_path, topic=topic, log_backend="kafka", kafka_bootstrap=mock.bootstrap,
                        kafka_properties={"client.id": "churn-test"})  # fmt: skip
    sup = Supervisor(tmp_path, topic, f"sqlite:///{tmp_path / 'x.db'}", StaticChampion(),
                     log_config=log_config(settings))  # fmt: skip
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda args, env: started.append((args, env)))
    try:
        assert isinstance(sup.log, KafkaLog) and sup.log.num_partitions == 2
        sup._spawn("w0")
    finally:
        sup.log.close()
    args, env = started[0]
    spec = WorkerSpec(**json.loads(args[-1]))
    assert spec.log["log_backend"] == "kafka" and spec.log["kafka_bootstrap"] == mock.bootstrap
    assert "kafka_properties" not in spec.log and "churn-test" not in args[-1]
    assert json.loads(env["CHURN_KAFKA_PROPERTIES"]) == {"client.id": "churn-test"}
    monkeypatch.setenv("CHURN_KAFKA_PROPERTIES", env["CHURN_KAFKA_PROPERTIES"])
    with open_log_config(spec.data_dir, spec.topic, spec.log) as log:  # what worker main() does
        assert isinstance(log, KafkaLog) and log.name == topic and log.num_partitions == 2
        assert log.properties == {"client.id": "churn-test"}
    # no config: the file backend, as before
    simulated_log(tmp_path / "f" / "log", users=20, days=2, partitions=2, seed=1).close()
    with open_log_config(tmp_path / "f", "events", None) as log:
        assert not isinstance(log, KafkaLog) and log.num_partitions == 2


def test_a_missing_kafka_topic_is_one_clear_error(tmp_path, mock):
    conf = {"log_backend": "kafka", "kafka_bootstrap": mock.bootstrap, "kafka_timeout_s": 5.0}
    with pytest.raises(LogError, match=r"does not exist at .*churn topics --create"):
        Supervisor(tmp_path, "no-such-topic", f"sqlite:///{tmp_path / 'x.db'}", StaticChampion(),
                   log_config=conf)  # fmt: skip

    from churn.cli.app import app
    from churn.cli.stream import register

    if "stream" not in {c.name for c in app.registered_commands}:
        register(app)
    env = {"CHURN_LOG_BACKEND": "kafka", "CHURN_KAFKA_BOOTSTRAP": mock.bootstrap}
    result = CliRunner().invoke(app, ["--data-dir", str(tmp_path), "--topic", "no-such-topic", "stream"],
                                env=env)  # fmt: skip
    assert result.exit_code == 1
    assert "Kafka topic 'no-such-topic' does not exist" in result.output
    assert "churn topics --create" in result.output and "Traceback" not in result.output
