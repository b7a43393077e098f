"""The Kafka backend on librdkafka's in-process mock cluster: what the shared
conformance suite cannot check (parity with the file backend, delivery errors,
Kafka-held group offsets, lag, topic admin, the backend factory)."""

from __future__ import annotations

import gc
import os
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from confluent_kafka import Consumer, TopicPartition

from pipeline.errors import ConfigError, LogError, OffsetOutOfRangeError, TopicMismatchError
from pipeline.log import FileLog, Status, describe_group, describe_rows, open_log, partition_for
from pipeline.log.kafka import KafkaLog, kafka_options, open_configured_log
from pipeline.log.kafka_admin import create_topic

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def kafka_log(kafka_mock, new_kafka_topic):
    """``kafka_log(num_partitions, **options)`` on a fresh topic; closed afterwards."""
    opened: list[KafkaLog] = []

    def factory(num_partitions: int = 4, name: str = "k", **options) -> KafkaLog:
        topic = new_kafka_topic(name, num_partitions)
        log = KafkaLog(kafka_mock.bootstrap, topic, num_partitions, create=False, **options)
        opened.append(log)
        return log

    yield factory
    for log in opened:
        log.close()


def read_partition(log, p: int) -> list[bytes]:
    out, offset = [], 0
    while True:
        vals, offset = log.fetch_values(p, offset, max_records=1000)
        if not vals:
            return out
        out += vals


def test_keyed_produce_routes_like_the_file_backend(kafka_log, tmp_path):
    """librdkafka's murmur2_random == our murmur2 port == the file backend, key by key
    (keys of every length mod 4, so murmur2's tail bytes are all exercised)."""
    n = 8
    keys = [f"user-{i}".encode() + b"x" * (i % 4) for i in range(400)]
    items = [(k, b'{"k":"' + k + b'"}') for k in keys]
    kafka = kafka_log(n)
    file = open_log(tmp_path, "events", n)
    try:
        ranges = kafka.produce(items)
        assert ranges == file.produce(items)
        for p in range(n):
            on_kafka, on_file = read_partition(kafka, p), read_partition(file, p)
            assert on_kafka == on_file
            assert on_kafka == [v for k, v in items if partition_for(k, n) == p]
    finally:
        file.close()


def test_append_offsets_come_from_delivery_reports(kafka_log):
    log = kafka_log(2)
    assert log.append(1, [b"a", b"b", b"c"]) == (0, 3)
    assert log.append(1, [b"d"]) == (3, 4)
    assert log.produce([]) == {}
    info = log.partition_info(1)
    assert (info.start_offset, info.end_offset, info.records) == (0, 4, 4)
    assert (log.start_offset(0), log.end_offset(0)) == (0, 0)
    topic = log.topic_info()
    assert topic.num_partitions == 2 and topic.records == 4


def test_delivery_errors_surface_as_log_errors(kafka_log, kafka_mock):
    log = kafka_log(2)
    # a genuine failed delivery report: librdkafka refuses a partition the topic lacks
    log._send([(None, b"x")], 7)
    with pytest.raises(LogError, match=r"1 of 1 records .* not delivered .*Unknown partition"):
        log._finish(1)
    # the broker rejects a produce request (non-retriable): the delivery report says so
    kafka_mock.fail_next_produce(29)  # TOPIC_AUTHORIZATION_FAILED
    with pytest.raises(LogError, match="not delivered"):
        log.append(0, [b"rejected"])
    # too large for message.max.bytes: refused before anything is sent
    small = kafka_log(1, producer_properties={"message.max.bytes": 4096})
    with pytest.raises(LogError, match=r"message\.max\.bytes=4096"):
        small.append(0, [b"ok", b"x" * 5000])
    assert small.end_offset(0) == 0
    with pytest.raises(LogError, match="partitions 0..0"):
        small.append(1, [b"ok"])


def test_sequential_fetches_keep_the_position(kafka_log):
    log = kafka_log(1)
    vals = [b'{"i":%d}' % i for i in range(300)]
    log.append(0, vals)
    calls: list[str] = []
    assert log.fetch_values(0, 0, max_records=10) == (vals[:10], 10)
    reader = log._readers[0]

    class Spy:  # count the seeks/assigns the reader's consumer receives
        def __init__(self, c):
            self.c = c

        def __getattr__(self, name):
            if name in ("seek", "assign"):
                calls.append(name)
            return getattr(self.c, name)

    reader.consumer = Spy(reader.consumer)
    got, offset = [], 10
    size = len(vals[10]) + 1
    while batch := log.fetch_values(0, offset, max_records=50, max_bytes=7 * size)[0]:
        got += batch
        offset += len(batch)
    assert got == vals[10:] and calls == []  # max_bytes leftovers served, never re-fetched
    assert log.fetch_values(0, 5, max_records=2) == (vals[5:7], 7)
    assert calls == ["seek"]
    reader.consumer = reader.consumer.c


def test_group_offsets_live_in_kafka(kafka_log, kafka_mock):
    log = kafka_log(2)
    log.append(0, [b"x"] * 10)
    assert log.committed("g") == {} and log.groups() == []
    log.commit("g", {0: 4}, WHEN)
    log.commit("g", {1: 0}, WHEN)
    log.commit("g", {0: 7}, WHEN)
    assert log.committed("g") == {0: 7, 1: 0}
    assert log.groups() == ["g"]
    assert log.commit_history("g") == {}  # Kafka keeps no history: Burrow stays OK
    # another client (another process, kafka-consumer-groups) sees the same offsets
    other = KafkaLog(kafka_mock.bootstrap, log.name, None, create=False)
    raw = Consumer({"bootstrap.servers": kafka_mock.bootstrap, "group.id": "g"})
    try:
        assert other.committed("g") == {0: 7, 1: 0}
        got = raw.committed([TopicPartition(log.name, 0)], timeout=10)
        assert got[0].offset == 7
    finally:
        raw.close()
        other.close()
    with pytest.raises(LogError, match="partitions 0..1"):
        log.commit("g", {5: 1}, WHEN)
    with pytest.raises(LogError, match="timezone"):
        log.commit("g", {0: 1}, datetime(2026, 1, 1))
    with pytest.raises(LogError, match="group name"):
        log.commit("../evil", {0: 1}, WHEN)
    assert log.reset_offsets("g", "latest") == {0: 10, 1: 0}
    assert log.committed("g") == {0: 10, 1: 0}


def test_lag_on_kafka_is_log_end_minus_committed(kafka_log, make_event, clock):
    """What `churn lag` prints, computed on a Kafka topic."""
    log = kafka_log(2)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    log.append(0, [make_event(i, ts=t0 + timedelta(minutes=i)) for i in range(10)])
    rows = describe_group(log, "g", clock)
    assert [(r.current_offset, r.log_end_offset, r.lag) for r in rows] == [
        (None, 10, 10),
        (None, 0, 0),
    ]
    assert rows[0].lag_seconds == 9 * 60.0
    log.commit("g", {0: 4}, clock.now())
    clock.advance(3600)
    row = describe_group(log, "g", clock)[0]
    assert (row.current_offset, row.lag, row.lag_seconds) == (4, 6, (9 - 3) * 60.0)
    assert row.status == Status.OK  # no commit history on Kafka: never STALL/STOP
    log.commit("g", {0: 10}, clock.now())
    table = describe_rows(describe_group(log, "g", clock))
    assert (table[0]["CURRENT-OFFSET"], table[0]["LAG"], table[0]["LAG-SECONDS"]) == (
        "10",
        "0",
        "0",
    )
    assert table[1]["CURRENT-OFFSET"] == "-"


def test_topic_partition_count_is_checked(kafka_log, kafka_mock):
    log = kafka_log(2)
    with pytest.raises(TopicMismatchError, match=r"has 2 partitions, but 4 were configured"):
        KafkaLog(kafka_mock.bootstrap, log.name, 4)
    with pytest.raises(TopicMismatchError, match=r"has 2 partitions, but 3"):
        create_topic(kafka_mock.bootstrap, log.name, 3)
    assert create_topic(kafka_mock.bootstrap, log.name, 2) == 2
    same = KafkaLog(kafka_mock.bootstrap, log.name, None, create=False)
    assert same.num_partitions == 2
    same.close()
    kafka_mock.create_topic(f"{log.name}.dlq", 2)
    with log.sibling(f"{log.name}.dlq", create=False) as dlq:  # same cluster settings
        assert (dlq.num_partitions, dlq.bootstrap) == (2, log.bootstrap)
        assert dlq.append(1, [b"dead"]) == (0, 1)
    with pytest.raises(LogError, match="does not exist"):
        KafkaLog(kafka_mock.bootstrap, "never-made", 2, create=False)
    with pytest.raises(ConfigError, match="bootstrap"):
        KafkaLog("", "t")


def test_create_topic_failure_is_a_clear_error(kafka_mock):
    """The mock cannot serve CreateTopics (no controller): the error says what to do."""
    with pytest.raises(LogError, match=r"kafka-topics\.sh --create --topic made-by-admin"):
        create_topic(kafka_mock.bootstrap, "made-by-admin", 3, 1, timeout_s=1)


def test_factory_selects_the_backend(kafka_mock, tmp_path):
    base = {"topic": "events", "partitions": 2, "log_dir": tmp_path / "log"}
    file_settings = SimpleNamespace(
        **base,
        log_segment_bytes=1 << 20,
        log_index_interval_bytes=4096,
        log_fsync="never",
        log_fsync_interval_s=1.0,
        retention_hours=None,
        retention_bytes=None,
        retention_allow_uncommitted=False,
    )
    with pytest.raises(LogError, match="churn simulate"):
        open_configured_log(file_settings, create=False)
    log = open_configured_log(file_settings)
    assert isinstance(log, FileLog) and log.num_partitions == 2
    log.close()

    kafka_mock.create_topic("factory-events", 4)  # create=False: the topic's own count
    settings = SimpleNamespace(
        **base,
        log_backend="kafka",
        kafka_bootstrap=kafka_mock.bootstrap,
        kafka_properties='{"client.id": "churn-test"}',
    )
    log = open_configured_log(settings, "factory-events", create=False)
    assert isinstance(log, KafkaLog) and log.num_partitions == 4
    assert log.properties == {"client.id": "churn-test"}
    log.close()
    with pytest.raises(ConfigError, match="CHURN_KAFKA_BOOTSTRAP"):
        open_configured_log(SimpleNamespace(**base, log_backend="kafka"))
    with pytest.raises(ConfigError, match="CHURN_LOG_BACKEND"):
        open_configured_log(SimpleNamespace(**base, log_backend="s3"))
    with pytest.raises(ConfigError, match="JSON"):
        kafka_options(SimpleNamespace(kafka_properties="{not json"))


def test_close_releases_librdkafka_threads(kafka_log):
    """The native threads the log's clients started are gone after ``close`` (compared by
    thread id: a count also moved when an earlier test's thread ended meanwhile)."""

    def native_threads() -> set[str]:
        return set(os.listdir("/proc/self/task"))

    gc.collect()
    before = native_threads()
    log = kafka_log(2)
    log.append(0, [b"a"])
    log.fetch(0, 0)
    log.commit("g", {0: 1}, WHEN)
    started = native_threads() - before
    assert started
    log.close()
    gc.collect()
    assert not started & native_threads()


def test_broker_retention_moves_the_start_and_old_offsets_raise(kafka_log):
    """The mock keeps ~5 MiB per partition: older records are deleted like retention."""
    log = kafka_log(1)
    log.append(0, [b"a" * 1000] * 10)
    assert len(log.fetch_values(0, 0, max_records=10)[0]) == 10
    assert log.fetch_values(0, 10) == ([], 10)  # reader drained, positioned at offset 10
    # a reader that falls behind: its background prefetch must not read ahead meanwhile
    tp = [TopicPartition(log.name, 0)]
    log._readers[0].consumer.pause(tp)
    for _ in range(8):
        log.append(0, [b"b" * 1000] * 1000)
    log._readers[0].consumer.resume(tp)
    start = log.start_offset(0)
    assert 10 < start < log.end_offset(0) == 8010
    with pytest.raises(OffsetOutOfRangeError, match="retention"):
        log.fetch_values(0, 10)  # the positioned reader: the broker answers out of range
    with pytest.raises(OffsetOutOfRangeError, match=f"below its start offset {start}"):
        log.fetch(0, 0)
    assert log.fetch(0, start, max_records=1)[0].offset == start


def test_end_offset_of_a_read_partition_needs_no_broker_round_trip(kafka_log, monkeypatch):
    """A consumer's loop asks end_offset per batch: while the log reads the partition it
    comes from the reader's last fetch response, not from a watermark request."""
    log = kafka_log(2)
    log.append(0, [b"a", b"b", b"c"])
    assert log.fetch_values(0, 0, max_records=2)[0] == [b"a", b"b"]
    requests = []
    real = log._watermarks
    monkeypatch.setattr(log, "_watermarks", lambda p: requests.append(p) or real(p))
    for _ in range(100):
        assert log.end_offset(0) == 3
    assert requests == []
    log.append(0, [b"d"])
    deadline = time.monotonic() + 5
    while log.end_offset(0) != 4 and time.monotonic() < deadline:  # the next fetch response
        time.sleep(0.01)
    assert log.end_offset(0) == 4 and requests == []
    assert log.end_offset(1) == 0 and requests == [1]  # not read here: asks the broker


def test_churn_topics_on_kafka_lists_checks_and_explains(kafka_mock, new_kafka_topic, tmp_path):
    from typer.testing import CliRunner

    from churn.cli.app import app

    topic = new_kafka_topic("cli", 4)
    kafka_mock.create_topic(f"{topic}.dlq", 4)
    with KafkaLog(kafka_mock.bootstrap, topic, 4, create=False) as log:
        log.produce([(f"u{i}".encode(), b"{}") for i in range(40)])
    env = {"CHURN_LOG_BACKEND": "kafka", "CHURN_KAFKA_BOOTSTRAP": kafka_mock.bootstrap,
           "CHURN_KAFKA_TIMEOUT_S": "1"}  # fmt: skip

    def churn(*args: str):
        return CliRunner().invoke(
            app, ["--data-dir", str(tmp_path), "--topic", topic, *args], env=env
        )

    r = churn("topics", "--create")  # existing topics with the configured count: kept
    assert r.exit_code == 0, r.output
    assert f"exists: topic '{topic}' with 4 partitions" in r.output
    assert f"exists: topic '{topic}.dlq' with 4 partitions" in r.output
    r = churn("topics", "--json")
    assert r.exit_code == 0, r.output
    import json

    listed = {t["topic"]: (t["partitions"], t["records"]) for t in json.loads(r.output)}
    assert listed == {topic: (4, 40), f"{topic}.dlq": (4, 0)}
    r = CliRunner().invoke(
        app, ["--data-dir", str(tmp_path), "--topic", topic, "--partitions", "8", "topics", "--create"],
        env=env,
    )  # fmt: skip
    assert r.exit_code == 1
    assert f"Kafka topic '{topic}' has 4 partitions, but 8 were configured" in r.output
    r = CliRunner().invoke(
        app, ["--data-dir", str(tmp_path), "--topic", "absent", "topics"], env=env
    )
    assert r.exit_code == 1 and "does not exist" in r.output and "churn topics --create" in r.output
    # the mock cannot serve CreateTopics: a missing topic is a clear error naming the remedy
    r = CliRunner().invoke(
        app, ["--data-dir", str(tmp_path), "--topic", "absent", "topics", "--create"], env=env
    )
    assert r.exit_code == 1 and "kafka-topics.sh --create --topic absent --partitions 4" in r.output


def test_topics_create_asks_for_the_configured_partitions_and_replication(monkeypatch, tmp_path):
    """What `churn topics --create` sends to the Admin API (the mock cannot create
    topics, so the request itself is checked): both topics, N partitions, the
    configured replication factor and the security properties."""
    from pipeline.config import Settings
    from pipeline.log import kafka_admin
    from pipeline.log.kafka_config import create_configured_topics

    made: dict[str, object] = {}
    confs: list[dict] = []

    class FakeFuture:
        def result(self, timeout=None):
            return None

    class FakeAdmin:
        def __init__(self, conf):
            self.conf = conf

        def list_topics(self, timeout=None):
            topics = {n: SimpleNamespace(partitions=dict.fromkeys(range(t.num_partitions)), error=None)
                      for n, t in made.items()}  # fmt: skip
            return SimpleNamespace(topics=topics)

        def create_topics(self, new, request_timeout=None, operation_timeout=None):
            made.update({t.topic: t for t in new})
            confs.append(self.conf)
            return {t.topic: FakeFuture() for t in new}

    monkeypatch.setattr(
        kafka_admin, "_admin", lambda b, p: FakeAdmin({**dict(p or {}), "bootstrap.servers": b})
    )
    settings = Settings(data_dir=tmp_path, topic="ev", partitions=6, log_backend="kafka",
                        kafka_bootstrap="broker:9092", kafka_replication_factor=3,
                        kafka_properties={"security.protocol": "SASL_SSL"})  # fmt: skip
    out = create_configured_topics(settings)
    assert out == [("ev", 6, True), ("ev.dlq", 6, True)]
    assert {n: (t.num_partitions, t.replication_factor) for n, t in made.items()} == {
        "ev": (6, 3),
        "ev.dlq": (6, 3),
    }
    assert confs[-1] == {"security.protocol": "SASL_SSL", "bootstrap.servers": "broker:9092"}
    assert create_configured_topics(settings) == [("ev", 6, False), ("ev.dlq", 6, False)]


def test_churn_topics_create_on_the_file_backend(tmp_path):
    from typer.testing import CliRunner

    from churn.cli.app import app

    def churn(*args: str):
        return CliRunner().invoke(
            app, ["--data-dir", str(tmp_path), *args], env={"CHURN_LOG_BACKEND": "file"}
        )

    r = churn("--partitions", "3", "topics", "--create")
    assert r.exit_code == 0, r.output
    assert "created topic 'events' with 3 partitions" in r.output
    assert "created topic 'events.dlq' with 3 partitions" in r.output
    with open_log(tmp_path / "log", "events") as log:
        assert log.num_partitions == 3
    r = churn("--partitions", "5", "topics", "--create")
    assert r.exit_code == 1 and "has 3 partitions, but 5 were requested" in r.output


def test_retriable_broker_errors_are_log_unavailable_others_stay_fatal():
    """A worker restarts on LogUnavailableError (exit 1) but stops the group on a plain LogError."""
    from confluent_kafka import KafkaError

    from pipeline.errors import LogError, LogUnavailableError
    from pipeline.log.kafka import _log_error

    for code in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT,
                 KafkaError.NOT_LEADER_FOR_PARTITION):
        assert _log_error(KafkaError(code)) is LogUnavailableError, code
    for code in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.UNKNOWN_TOPIC_OR_PART):
        assert _log_error(KafkaError(code)) is LogError, code
    assert issubclass(LogUnavailableError, LogError)
