"""The scale-out backend: one Kafka topic behind the same :class:`PartitionLog` API.

* Producing: an idempotent producer (``enable.idempotence=true``) with librdkafka's
  ``murmur2_random`` partitioner, i.e. Java Kafka's keyed murmur2, so a user id lands
  on the same partition number as with the file backend. ``append``/``produce`` wait
  for every delivery report (flush) and raise ``LogError`` on any failed record;
  offsets come from the delivery reports.
* Consuming: one consumer per fetched partition, ``assign()``ed by us (no group
  membership), which keeps its position: a sequential ``fetch`` only seeks when the
  asked offset differs from where the previous fetch stopped. Records already
  prefetched but beyond ``max_records``/``max_bytes`` are kept for the next call.
* Consumer groups: ``commit`` stores offsets in Kafka's group coordinator (a consumer
  with that ``group.id`` commits synchronously), so ``kafka-consumer-groups --describe``
  shows them. Kafka keeps no commit history: ``commit_history`` is ``{}`` and Burrow
  status stays OK (lag and lag-seconds still work).

Unlike the file log, Kafka cannot make a batch all-or-nothing without transactions;
if a broker rejects part of a batch, ``LogError`` names how many records failed.

>>> log = KafkaLog("localhost:9092", "events", 4)          # doctest: +SKIP
>>> log.produce([(b"u1", b'{"a":1}')])                     # doctest: +SKIP
{1: (0, 1)}
"""

from __future__ import annotations

import collections
import contextlib
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from pipeline.errors import ConfigError, LogError, LogUnavailableError, OffsetOutOfRangeError
from pipeline.log import groups as gr
from pipeline.log import kafka_admin
from pipeline.log.base import CommitEntry, PartitionInfo, PartitionLog, Record, ResetTo

_TOPIC_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,248}$")
# Set by us whatever the user passes: routing parity and "no duplicates on retry".
FORCED_PRODUCER = {"enable.idempotence": True, "partitioner": "murmur2_random"}
DEFAULT_PRODUCER = {"linger.ms": 5, "message.timeout.ms": 30_000}
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000  # librdkafka's message.max.bytes default
_OUT_OF_RANGE = {KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET}


class _Reader:
    """One partition's assigned consumer, its position and prefetched leftovers."""

    __slots__ = ("consumer", "hi", "pending", "position")

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.position: int | None = None  # offset of the next record this reader yields
        self.pending: collections.deque[tuple[int, bytes]] = collections.deque()
        self.hi = 0  # last known log-end offset



_TRANSIENT = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT,
              KafkaError._MSG_TIMED_OUT, KafkaError.REQUEST_TIMED_OUT,
              KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE}


def _log_error(err: KafkaError) -> type[LogError]:
    """Retriable broker errors (a restart may succeed) vs. everything else."""
    try:
        transient = err.retriable() or err.code() in _TRANSIENT
    except Exception:  # noqa: BLE001 - an odd error object is not transient
        transient = False
    return LogUnavailableError if transient else LogError

class KafkaLog(PartitionLog):
    """Topic ``topic`` on the Kafka cluster at ``bootstrap``.

    ``properties`` are librdkafka properties for every client (security, e.g.
    ``{"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", ...}``);
    ``producer_properties`` / ``consumer_properties`` add client-specific ones.
    ``num_partitions=None`` uses the topic's count; a different explicit count raises
    ``TopicMismatchError``. With ``create`` a missing topic is created
    (``replication_factor=-1``: the broker default; ``topic_config`` e.g.
    ``{"retention.ms": "604800000"}``), else a missing topic is a ``LogError``.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        num_partitions: int | None = None,
        *,
        properties: Mapping[str, Any] | None = None,
        producer_properties: Mapping[str, Any] | None = None,
        consumer_properties: Mapping[str, Any] | None = None,
        create: bool = True,
        replication_factor: int = -1,
        topic_config: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if not isinstance(bootstrap, str) or not bootstrap.strip():
            raise ConfigError(
                f"Kafka bootstrap servers {bootstrap!r} must be 'host:port[,host:port]' "
                "(env CHURN_KAFKA_BOOTSTRAP)"
            )
        if not isinstance(topic, str) or not _TOPIC_RE.match(topic):
            raise ConfigError(
                f"invalid Kafka topic name {topic!r}: use 1-249 of [A-Za-z0-9._-], "
                "not starting with '.' or '-'"
            )
        if num_partitions is not None and (
            not isinstance(num_partitions, int) or num_partitions < 1
        ):
            raise ConfigError(f"num_partitions={num_partitions!r} must be an int >= 1")
        if timeout_s <= 0:
            raise ConfigError(f"timeout_s={timeout_s} must be > 0")
        self.bootstrap = bootstrap
        self.name = topic
        self.timeout_s = timeout_s
        self.properties = {k: v for k, v in (properties or {}).items() if k != "bootstrap.servers"}
        self._common = {**self.properties, "bootstrap.servers": bootstrap}
        self._client_props = (dict(producer_properties or {}), dict(consumer_properties or {}))
        self._consumer_conf = {**self._common, **dict(consumer_properties or {})}
        # user consumer properties win over our reader defaults (e.g. fetch.wait.max.ms)
        self._reader_overrides = {
            k: v for k, v in dict(consumer_properties or {}).items() if k == "fetch.wait.max.ms"
        }
        self._admin = kafka_admin._admin(bootstrap, self.properties)
        self.num_partitions = self._open_topic(
            num_partitions, create, replication_factor, topic_config
        )

        pconf = {**DEFAULT_PRODUCER, **self._common, **dict(producer_properties or {})}
        pconf.update(FORCED_PRODUCER)
        self.max_message_bytes = int(pconf.get("message.max.bytes", DEFAULT_MAX_MESSAGE_BYTES))
        self._delivery_timeout_s = int(pconf["message.timeout.ms"]) / 1000 + 5
        pconf["on_delivery"] = self._on_delivery
        self._producer_conf = pconf
        self._producer: Producer | None = None
        self._readers: dict[int, _Reader] = {}
        self._meta: Consumer | None = None
        self._group_consumers: dict[str, Consumer] = {}
        self._used_groups: set[str] = set()
        self._lock = threading.RLock()
        # delivery-report state of the batch being produced (one batch at a time)
        self._ranges: dict[int, list[int]] = {}
        self._errors: list[tuple[int, KafkaError]] = []

    def _open_topic(
        self, requested: int | None, create: bool, rf: int, config: Mapping[str, str] | None
    ) -> int:
        actual = kafka_admin.topic_partitions(self._admin, self.name, self.timeout_s)
        if actual is None:
            if not create:
                raise LogError(
                    f"Kafka topic {self.name!r} does not exist at {self.bootstrap}; create it "
                    "(`churn topics --create`) and produce to it (`churn simulate`), or check "
                    "--topic / CHURN_KAFKA_BOOTSTRAP"
                )
            from pipeline.log.file import DEFAULT_PARTITIONS

            return kafka_admin.create_topic(
                self.bootstrap,
                self.name,
                requested or DEFAULT_PARTITIONS,
                rf,
                config,
                properties=self.properties,
                timeout_s=self.timeout_s,
            )
        if requested is not None and requested != actual:
            raise kafka_admin.mismatch(self.name, actual, requested)
        return actual

    def _check(self, partition: int) -> None:
        if not isinstance(partition, int) or not 0 <= partition < self.num_partitions:
            raise LogError(
                f"partition {partition!r} does not exist: topic {self.name!r} has partitions "
                f"0..{self.num_partitions - 1}"
            )

    # -- producing -------------------------------------------------------------------
    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        p = msg.partition()
        if err is not None:
            self._errors.append((p, err))
            return
        o = msg.offset()
        r = self._ranges.get(p)
        if r is None:
            self._ranges[p] = [o, o]
        elif o < r[0]:
            r[0] = o
        elif o > r[1]:
            r[1] = o

    def _check_value(self, i: int, v: bytes) -> None:
        if not isinstance(v, bytes | bytearray | memoryview):
            raise TypeError(f"value #{i} is {type(v).__name__}, expected bytes")
        if b"\n" in v:
            raise LogError(
                f"value #{i} contains a newline; a record is one line (encode it as JSON)"
            )
        if len(v) > self.max_message_bytes - 512:  # leave room for the batch overhead
            raise LogError(
                f"value #{i} is {len(v)} bytes, over the producer's message.max.bytes="
                f"{self.max_message_bytes} (minus overhead); raise it (and the topic's "
                "max.message.bytes) in CHURN_KAFKA_PROPERTIES, or send smaller events"
            )

    def _send(self, items: Iterable[tuple[bytes | None, bytes]], partition: int | None) -> None:
        if self._producer is None:
            self._producer = Producer(self._producer_conf)
        produce, topic = self._producer.produce, self.name
        for key, value in items:
            while True:
                try:
                    if partition is None:
                        produce(topic, value, key)
                    else:
                        produce(topic, value, key, partition)
                    break
                except BufferError:  # local queue full: serve delivery reports, retry
                    self._producer.poll(0.05)
                except KafkaException as exc:
                    self._producer.flush(self._delivery_timeout_s)
                    raise LogError(
                        f"producing to {topic!r} failed: {exc.args[0].str()}; records before "
                        "this one were sent"
                    ) from None

    def _finish(self, total: int) -> dict[int, list[int]]:
        assert self._producer is not None
        left = self._producer.flush(self._delivery_timeout_s)
        ranges, errors = self._ranges, self._errors
        self._ranges, self._errors = {}, []
        if left:
            raise LogError(
                f"{left} of {total} records to {self.name!r} were not acknowledged within "
                f"{self._delivery_timeout_s:.0f}s; is the cluster at {self.bootstrap} reachable?"
            )
        if errors:
            p, err = errors[0]
            if any(e.fatal() for _, e in errors):  # the idempotent producer is unusable now
                self._producer = None  # a new one (new producer id) on the next call
            raise LogError(
                f"{len(errors)} of {total} records to Kafka topic {self.name!r} were not "
                f"delivered (first: partition {p}: {err.str()}); the others were written"
            )
        return ranges

    def append(self, partition: int, values: Sequence[bytes]) -> tuple[int, int]:
        self._check(partition)
        values = values if isinstance(values, list) else list(values)
        for i, v in enumerate(values):
            self._check_value(i, v)
        if not values:
            end = self.end_offset(partition)
            return end, end
        with self._lock:
            self._send(((None, v) for v in values), partition)
            first, last = self._finish(len(values))[partition]
        return first, last + 1

    def produce(self, items: Iterable[tuple[bytes, bytes]]) -> dict[int, tuple[int, int]]:
        """Keyed produce: librdkafka's murmur2 partitioner picks the partition."""
        items = items if isinstance(items, list) else list(items)
        for i, (_, v) in enumerate(items):
            self._check_value(i, v)
        if not items:
            return {}
        with self._lock:
            self._send(items, None)
            ranges = self._finish(len(items))
        return {p: (r[0], r[1] + 1) for p, r in sorted(ranges.items())}

    # -- consuming -------------------------------------------------------------------
    def _new_consumer(self, group: str | None = None) -> Consumer:
        conf = {
            **self._consumer_conf,
            "group.id": group or f"churn-reader-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",  # below start: an error, never a silent jump
            "enable.partition.eof": False,
            # a seek waits for the in-flight long-poll fetch: keep it short (default 500)
            "fetch.wait.max.ms": 50,
            **self._reader_overrides,
        }
        return Consumer(conf)

    def _watermarks(self, partition: int) -> tuple[int, int]:
        if self._meta is None:
            self._meta = self._new_consumer()
        try:
            lo, hi = self._meta.get_watermark_offsets(
                TopicPartition(self.name, partition), timeout=self.timeout_s, cached=False
            )
        except KafkaException as exc:
            raise _log_error(exc.args[0])(
                f"cannot read offsets of {self.name!r}[{partition}]: {exc.args[0].str()}"
            ) from None
        return lo, hi

    def fetch(
        self, partition: int, offset: int, max_records: int = 10_000, max_bytes: int = 8 << 20
    ) -> list[Record]:
        values, _ = self.fetch_values(partition, offset, max_records, max_bytes)
        return [Record(partition, o, v) for o, v in enumerate(values, offset)]

    def fetch_values(
        self, partition: int, offset: int, max_records: int = 10_000, max_bytes: int = 8 << 20
    ) -> tuple[list[bytes], int]:
        self._check(partition)
        if not isinstance(offset, int) or offset < 0:
            raise OffsetOutOfRangeError(
                f"offset {offset!r} of partition {partition} is below its start offset"
            )
        if max_records <= 0:
            return [], offset
        with self._lock:
            r = self._readers.get(partition)
            if r is None:
                r = self._readers[partition] = _Reader(self._new_consumer())
            if r.position != offset:
                lo, hi = self._watermarks(partition)
                if offset < lo:
                    raise OffsetOutOfRangeError(
                        f"offset {offset} of partition {partition} is below its start offset "
                        f"{lo} (the broker's retention deleted it)"
                    )
                if offset >= hi:
                    return [], offset
                tp = TopicPartition(self.name, partition, offset)
                try:
                    if r.position is None:
                        raise KafkaException(KafkaError(KafkaError._STATE))
                    r.consumer.seek(tp)  # keeps the assignment, drops the prefetch
                except KafkaException:  # first use, or not fetching yet: (re)assign
                    r.consumer.assign([tp])
                r.position, r.hi = offset, hi
                r.pending.clear()
            elif not r.pending and offset >= r.hi:
                r.hi = self._watermarks(partition)[1]
                if offset >= r.hi:
                    return [], offset
            return self._read(r, partition, offset, max_records, max_bytes)

    def _read(
        self, r: _Reader, partition: int, offset: int, max_records: int, max_bytes: int
    ) -> tuple[list[bytes], int]:
        want = min(max_records, max(r.hi - offset, len(r.pending)))
        out: list[bytes] = []
        size = 0
        while r.pending and len(out) < want:  # leftovers of the previous fetch first
            o, v = r.pending[0]
            size += len(v) + 1  # count like the file log: value plus its newline
            if out and size > max_bytes:
                return out, o
            r.pending.popleft()
            out.append(v)
            r.position = o + 1
        deadline = time.monotonic() + self.timeout_s
        while len(out) < want:
            left = deadline - time.monotonic()
            if left <= 0:
                if out:
                    break
                raise LogUnavailableError(
                    f"no records from {self.name!r}[{partition}] at offset {offset} within "
                    f"{self.timeout_s:.0f}s although its log-end offset is {r.hi}"
                )
            # short slices: consume() waits for the full count, even after an error event
            msgs = r.consumer.consume(min(want - len(out), 100_000), timeout=min(left, 0.2))
            if not msgs:
                continue
            if any(m.error() is not None for m in msgs):
                msgs = self._drop_errors(r, partition, offset, msgs)
                if not msgs:
                    continue
            vals = [m.value() or b"" for m in msgs]
            batch = sum(map(len, vals)) + len(vals)
            if size + batch <= max_bytes:  # the common case: take the whole batch
                out += vals
                size += batch
                r.position = msgs[-1].offset() + 1
                continue
            for i, v in enumerate(vals):  # over max_bytes: keep the rest for next time
                size += len(v) + 1
                if out and size > max_bytes:
                    r.pending.extend(
                        (m.offset(), w) for m, w in zip(msgs[i:], vals[i:], strict=True)
                    )
                    break
                out.append(v)
                r.position = msgs[i].offset() + 1
            break
        return out, (r.position if out and r.position is not None else offset)

    def _drop_errors(self, r: _Reader, partition: int, offset: int, msgs: list[Any]) -> list[Any]:
        """Raise for a real fetch error; drop informational events (partition EOF)."""
        for m in msgs:
            if (err := m.error()) is None or err.code() == KafkaError._PARTITION_EOF:
                continue
            if err.code() in _OUT_OF_RANGE:
                r.position = None  # force a fresh seek next time
                r.pending.clear()
                raise OffsetOutOfRangeError(
                    f"offset {offset} of partition {partition} is out of range "
                    f"({err.str()}); the broker's retention deleted it"
                )
            raise _log_error(err)(f"fetching {self.name!r}[{partition}]: {err.str()}")
        return [m for m in msgs if m.error() is None]

    def end_offset(self, partition: int) -> int:
        """Log-end offset (high watermark). While this object reads ``partition`` and is
        behind, it is the watermark of the reader's last fetch response (librdkafka
        fetches ahead in the background), so a consumer loop that is behind makes no
        broker round trip per batch; the value may trail the broker's by one fetch
        (``fetch.wait.max.ms``), never exceed it. A reader at that watermark, or no
        reader, asks the broker: "caught up" is always checked against the broker."""
        self._check(partition)
        r = self._readers.get(partition)
        if r is not None and r.position is not None:
            try:
                hi = r.consumer.get_watermark_offsets(
                    TopicPartition(self.name, partition), cached=True
                )[1]
            except KafkaException:
                hi = -1
            r.hi = max(r.hi, hi)
            if r.hi > r.position:
                return r.hi
        return self._watermarks(partition)[1]

    def partition_info(self, partition: int) -> PartitionInfo:
        """Start/end from the broker's watermarks; Kafka's clients do not report segment
        counts or sizes, so ``segments`` and ``bytes`` are 0."""
        self._check(partition)
        lo, hi = self._watermarks(partition)
        return PartitionInfo(partition, lo, hi, 0, 0)

    # -- consumer groups -------------------------------------------------------------
    def _group_consumer(self, group: str) -> Consumer:
        c = self._group_consumers.get(group)
        if c is None:
            c = self._group_consumers[group] = self._new_consumer(group)
        return c

    def _commit(self, group: str, offsets: Mapping[int, int]) -> None:
        tps = [TopicPartition(self.name, p, o) for p, o in sorted(offsets.items())]
        try:
            done = self._group_consumer(group).commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            raise LogError(
                f"committing offsets of group {group!r} on {self.name!r} failed: "
                f"{exc.args[0].str()} (a group with live members that use subscribe() only "
                "accepts commits from its members)"
            ) from None
        bad = [tp for tp in done or [] if tp.error is not None]
        if bad:
            raise LogError(
                f"committing group {group!r} partition {bad[0].partition} failed: {bad[0].error}"
            )
        self._used_groups.add(group)

    def commit(self, group: str, offsets: Mapping[int, int], when: datetime) -> None:
        """Commit to Kafka's group coordinator. ``when`` is validated (tz-aware) but not
        stored: Kafka keeps no commit history."""
        gr.check_group_name(group)
        # the shared validation (tz-aware time, partitions in range, offsets >= 0)
        gr.apply_commit(
            gr.GroupState(), offsets, when, collections.defaultdict(int), self.num_partitions
        )
        if offsets:
            with self._lock:
                self._commit(group, offsets)

    def committed(self, group: str) -> dict[int, int]:
        gr.check_group_name(group)
        tps = [TopicPartition(self.name, p) for p in range(self.num_partitions)]
        with self._lock:
            try:
                got = self._group_consumer(group).committed(tps, timeout=self.timeout_s)
            except KafkaException as exc:
                raise LogError(f"reading offsets of group {group!r}: {exc.args[0].str()}") from None
        return {
            tp.partition: tp.offset for tp in got if tp.offset >= 0 and tp.offset != OFFSET_INVALID
        }

    def commit_history(self, group: str) -> dict[int, list[CommitEntry]]:
        """Kafka keeps no commit history: always ``{}`` (Burrow status stays OK)."""
        return {}

    def groups(self) -> list[str]:
        """Groups with committed offsets on this topic: the cluster's group list (where
        the broker supports ListGroups) plus groups this object committed for."""
        names = set(self._used_groups)
        try:
            res = self._admin.list_consumer_groups(request_timeout=self.timeout_s).result()
            names.update(g.group_id for g in res.valid)
        except KafkaException:
            pass  # unsupported (e.g. some mock/proxy setups): this process's groups only
        tps = [TopicPartition(self.name, p) for p in range(self.num_partitions)]
        out = []
        for g in sorted(names):
            if g.startswith("churn-reader-"):
                continue
            try:
                fut = self._admin.list_consumer_group_offsets(
                    [ConsumerGroupTopicPartitions(g, tps)], request_timeout=self.timeout_s
                )[g]
                res = fut.result(timeout=self.timeout_s + 5)
            except KafkaException:
                continue
            if any(tp.offset >= 0 for tp in res.topic_partitions or []):
                out.append(g)
        return out

    def reset_offsets(
        self, group: str, to: ResetTo = "earliest", when: datetime | None = None
    ) -> dict[int, int]:
        """Commit every partition's start or end offset (no history is kept)."""
        gr.check_group_name(group)
        if to not in ("earliest", "latest"):
            raise LogError(f"reset_offsets to={to!r}: use 'earliest' or 'latest'")
        marks = [self._watermarks(p) for p in range(self.num_partitions)]
        new = {p: (lo if to == "earliest" else hi) for p, (lo, hi) in enumerate(marks)}
        with self._lock:
            self._commit(group, new)
        return new

    # -- lifecycle ---------------------------------------------------------------------
    def sibling(self, topic: str, *, create: bool = True) -> KafkaLog:
        """Another topic on the same cluster with the same settings and partition count
        (e.g. the ``<topic>.dlq`` dead-letter topic)."""
        return KafkaLog(
            self.bootstrap,
            topic,
            self.num_partitions,
            properties=self.properties,
            producer_properties=self._client_props[0],
            consumer_properties=self._client_props[1],
            create=create,
            timeout_s=self.timeout_s,
        )

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.flush(self._delivery_timeout_s)
                self._producer = None
            for c in [
                *(r.consumer for r in self._readers.values()),
                *self._group_consumers.values(),
                *([self._meta] if self._meta is not None else []),
            ]:
                with contextlib.suppress(RuntimeError):  # already closed
                    c.close()
            self._readers.clear()
            self._group_consumers.clear()
            self._meta = None
            self._admin = None

    def __enter__(self) -> KafkaLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KafkaLog({self.bootstrap!r}, {self.name!r}, num_partitions={self.num_partitions})"


def kafka_options(settings: Any) -> dict[str, Any]:
    """KafkaLog keyword options from a :class:`pipeline.config.Settings` (duck-typed:
    fields missing from an older Settings take the defaults below)."""
    props = getattr(settings, "kafka_properties", None) or {}
    if isinstance(props, str):
        import json

        try:
            props = json.loads(props)
        except ValueError as exc:
            raise ConfigError(
                f"CHURN_KAFKA_PROPERTIES must be a JSON object of librdkafka properties ({exc})"
            ) from None
    if not isinstance(props, Mapping):
        raise ConfigError(
            "CHURN_KAFKA_PROPERTIES must be a JSON object, e.g. "
            '\'{"security.protocol": "SASL_SSL"}\''
        )
    return {
        "properties": dict(props),
        "replication_factor": getattr(settings, "kafka_replication_factor", -1),
        "timeout_s": getattr(settings, "kafka_timeout_s", 10.0),
    }


def requested_partitions(settings: Any) -> int | None:
    """The partition count the user asked for (``--partitions`` / ``CHURN_PARTITIONS``), or
    None when ``settings.partitions`` is only the default for a new topic."""
    fields_set = getattr(settings, "model_fields_set", None)
    return settings.partitions if fields_set is None or "partitions" in fields_set else None


def open_configured_log(
    settings: Any, topic: str | None = None, *, create: bool = True
) -> PartitionLog:
    """The backend the settings select: ``log_backend="file"`` (default) or ``"kafka"``.

    ``create=True`` creates a missing topic with ``settings.partitions``; ``False``
    opens an existing one with its own count (missing: ``LogError``). An existing topic is
    held to ``settings.partitions`` only when the user set it (``--partitions`` or
    ``CHURN_PARTITIONS``): the default 4 is for new topics.
    """
    backend = getattr(settings, "log_backend", "file")
    name = topic or settings.topic
    wanted = requested_partitions(settings)
    if backend == "file":
        from pipeline.log.file import file_options, lost_metadata, open_log

        exists = (settings.log_dir / name / "topic.json").exists()
        if not exists and (problem := lost_metadata(settings.log_dir / name)) is not None:
            raise LogError(problem)
        if not create and not exists:
            raise LogError(
                f"no topic {name!r} under {settings.log_dir}; run `churn simulate` or `churn import` first "
                "(or check --data-dir/--topic)"
            )
        return open_log(
            settings.log_dir,
            name,
            (wanted if exists else settings.partitions) if create else None,
            **file_options(settings),
        )
    if backend == "kafka":
        bootstrap = getattr(settings, "kafka_bootstrap", None)
        if not bootstrap:
            raise ConfigError(
                "log_backend=kafka needs bootstrap servers: set CHURN_KAFKA_BOOTSTRAP=host:port"
            )
        return KafkaLog(
            bootstrap,
            name,
            settings.partitions if create else None,
            create=create,
            **kafka_options(settings),
        )
    raise ConfigError(
        f"log_backend={backend!r}: use 'file' (default) or 'kafka' (CHURN_LOG_BACKEND)"
    )

