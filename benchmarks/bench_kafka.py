"""Kafka backend throughput on librdkafka's in-process mock cluster, beside the file log.

* ``kafka_produce_eps``: keyed ``KafkaLog.produce`` (librdkafka murmur2 partitioner,
  idempotent producer, every delivery report awaited) in batches of 10,000 into a
  fresh 4-partition topic; the producer is started before timing (its idempotent
  producer-id setup takes ~0.5 s on the mock, once per producer).
* ``file_produce_eps_same_run``: the same events into a fresh 4-partition file topic,
  in the same process and run, so ``kafka/file`` is a like-for-like ratio.
* ``kafka_consume_eps`` / ``file_consume_eps_same_run``: a fresh log object fetches every
  partition sequentially with ``fetch_values`` and decodes through the dead-letter helper.
* ``kafka_stream_tiny_model_eps`` / ``file_stream_tiny_model_eps``: the stream end to end -
  one in-process scoring worker (batches of 1,000, a **toy 20-tree XGBoost champion fitted
  on random data** (``publish_tiny_champion``), no drift: a backend comparison, not a
  scoring figure - ``stream_eps`` in bench_stream is that), SQLite store, checkpoints
  every second, offsets committed to the group) over a simulated history (2,000 users x
  45 days, ~98k events; quick: 800 x 30) until caught up, the same records on the mock
  topic and in a file topic, alternating in the same run; ``kafka/file`` is printed.

Rates are events per **wall-clock second**, median of 3 runs (quick: 1): the mock broker
runs inside this process on librdkafka threads, so CPU time would bill the broker's
work to the client. The mock cluster is **not a performance reference**: it keeps
everything in memory, has no replication, no disk, no network hop; a real cluster's
figures depend on acks, batching (``linger.ms``, ``batch.size``), compression and RTT.
The mock keeps ~5 MiB per partition, so the event count stays below that.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.bench_log import make_events
from pipeline.clock import FakeClock
from pipeline.log import DeadLetters, MemoryLog, PartitionLog, decode_values, open_log
from pipeline.log.kafka import KafkaLog
from pipeline.testing.kafka import MockCluster

BATCH = 10_000
PARTITIONS = 4
CAVEAT = (
    "caveat: librdkafka's mock cluster is in-process and in-memory; it is NOT a performance "
    "reference for a real Kafka/Redpanda cluster (see docs/kafka.md)"
)


def _produce(log: PartitionLog, keys: list[bytes], values: list[bytes]) -> float:
    t = time.perf_counter()
    for i in range(0, len(values), BATCH):
        log.produce(list(zip(keys[i : i + BATCH], values[i : i + BATCH], strict=True)))
    return time.perf_counter() - t


def _consume(log: PartitionLog) -> tuple[float, int]:
    dlq = DeadLetters(MemoryLog("dlq", PARTITIONS), FakeClock(), log.name)
    n = 0
    t = time.perf_counter()
    for p in range(PARTITIONS):
        offset = 0
        while True:
            values, nxt = log.fetch_values(p, offset, max_records=BATCH)
            if not values:
                break
            events, _ = decode_values(p, offset, values, dlq)
            n += len(events)
            offset = nxt
    return time.perf_counter() - t, n


def _history(root: Path, quick: bool) -> PartitionLog:
    """A simulated history in a 4-partition file log (the real simulator)."""
    from pipeline.testing.stream import simulated_log

    users, days = (800, 30) if quick else (2_000, 45)
    return simulated_log(root / "log", users=users, days=days, partitions=PARTITIONS, seed=11)


def _copy_to_kafka(src: PartitionLog, dst: KafkaLog) -> None:
    """Same records at the same partitions and offsets."""
    for p in range(PARTITIONS):
        values = [r.value for r in src.iter_records(p, 0)]
        for i in range(0, len(values), BATCH):
            dst.append(p, values[i : i + BATCH])


def _stream(log: PartitionLog, root: Path, group: str, model) -> tuple[float, int]:
    """One in-process scoring worker over every partition until caught up: decode,
    features, score, SQLite store, checkpoints, offset commits. Wall seconds, events."""
    from pipeline.store import Store
    from pipeline.stream.config import StreamConfig, StreamPaths
    from pipeline.stream.worker import Worker

    paths = StreamPaths(root / group, group)
    cfg = StreamConfig(group=group, batch_size=1_000, max_wait_s=0.0, checkpoint_interval_s=1.0,
                       metrics_interval_s=3600.0)  # fmt: skip
    with Store(f"sqlite:///{root / group / 'churn.db'}") as store:
        worker = Worker("w0", log, store, paths, cfg, partitions=range(PARTITIONS), model=model)
        t = time.perf_counter()
        summary = worker.run(until_caught_up=True)
        dt = time.perf_counter() - t
    ends = {p: log.end_offset(p) for p in range(PARTITIONS)}
    assert log.committed(group) == ends, "the worker did not commit every partition's end"
    return dt, summary["events"]


def run_stream(mock: MockCluster, quick: bool, repeats: int) -> dict[str, float]:
    """End-to-end stream rate on the mock cluster beside the file backend, same run."""
    from pipeline.stream.config import StreamPaths
    from pipeline.stream.model import load_export
    from pipeline.testing.stream import publish_tiny_champion

    rates: dict[str, list[float]] = {"ks": [], "fs": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        file_log = _history(root / "file", quick)
        n = sum(file_log.end_offset(p) for p in range(PARTITIONS))
        mock.create_topic("stream", PARTITIONS)
        mock.create_topic("stream.dlq", PARTITIONS)
        with KafkaLog(mock.bootstrap, "stream", PARTITIONS, create=False) as k:
            _copy_to_kafka(file_log, k)
        model = load_export(publish_tiny_champion(StreamPaths(root / "model", "m"), version="1"))
        _stream(file_log, root, "warm-up", model)  # numba kernels compiled/loaded, caches warm
        for r in range(repeats):
            with KafkaLog(mock.bootstrap, "stream", PARTITIONS, create=False) as log:
                dt, got = _stream(log, root, f"kafka-{r}", model)
            assert got == n, f"streamed {got} of {n} events from the mock"
            rates["ks"].append(n / dt)
            dt, got = _stream(file_log, root, f"file-{r}", model)
            assert got == n
            rates["fs"].append(n / dt)
        file_log.close()
    ks, fs = statistics.median(rates["ks"]), statistics.median(rates["fs"])
    print(f"stream: {n:,} simulated events in {PARTITIONS} partitions, one in-process worker "
          f"(batches of 1,000, tiny XGBoost champion, SQLite store), median of {repeats}")  # fmt: skip
    print(f"  stream   kafka(mock) {ks:>10,.0f} ev/s   file {fs:>10,.0f} ev/s"
          f"   kafka/file {ks / fs:.2f}   (wall clock, fetch to scores stored + checkpoints)")  # fmt: skip
    return {"kafka_stream_tiny_model_eps": ks, "file_stream_tiny_model_eps": fs}


def run(quick: bool = False) -> dict[str, float]:
    n = 30_000 if quick else 100_000  # x ~150 B / 4 partitions: under the mock's ~5 MiB
    repeats = 1 if quick else 3
    keys, values = make_events(n)
    rates: dict[str, list[float]] = {k: [] for k in ("kp", "kc", "fp", "fc")}
    with MockCluster() as mock, tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            topic = f"bench-{r}"
            mock.create_topic(topic, PARTITIONS)
            with KafkaLog(mock.bootstrap, topic, PARTITIONS, create=False) as log:
                log.append(0, values[:1])  # start the producer (idempotent: ~0.5 s PID setup)
                rates["kp"].append(n / _produce(log, keys, values))
            with KafkaLog(mock.bootstrap, topic, PARTITIONS, create=False) as log:
                dt, got = _consume(log)
            assert got == n + 1, f"consumed {got} of {n + 1}: the mock deleted data"
            rates["kc"].append(got / dt)
            with open_log(Path(tmp) / str(r), "events", PARTITIONS) as log:
                rates["fp"].append(n / _produce(log, keys, values))
            with open_log(Path(tmp) / str(r), "events", PARTITIONS) as log:
                dt, got = _consume(log)
            assert got == n
            rates["fc"].append(n / dt)
        streamed = run_stream(mock, quick, repeats)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"events: {n:,} in {PARTITIONS} partitions, batches of {BATCH:,}, median of {repeats}")
    print(f"  produce  kafka(mock) {med['kp']:>10,.0f} ev/s   file {med['fp']:>10,.0f} ev/s"
          f"   kafka/file {med['kp'] / med['fp']:.2f}")  # fmt: skip
    print(f"  consume  kafka(mock) {med['kc']:>10,.0f} ev/s   file {med['fc']:>10,.0f} ev/s"
          f"   kafka/file {med['kc'] / med['fc']:.2f}   (fetch_values + decode)")  # fmt: skip
    print(CAVEAT)
    return streamed | {
        "kafka_produce_eps": med["kp"],
        "kafka_consume_eps": med["kc"],
        "file_produce_eps_same_run": med["fp"],
        "file_consume_eps_same_run": med["fc"],
    }


if __name__ == "__main__":
    run()
