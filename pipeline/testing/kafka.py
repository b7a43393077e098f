"""librdkafka's in-process mock cluster: a Kafka broker for tests, no JVM, no network.

:class:`MockCluster` is librdkafka's built-in mock broker, running in this process (only
127.0.0.1). It is started through the bundled librdkafka's C mock API
(``rd_kafka_mock_cluster_new`` / ``rd_kafka_mock_topic_create``) via ``ctypes``, because on
the mock the Admin API cannot create topics (``create_topics`` times out "waiting for
controller": the mock's metadata names controller 0, its brokers are 1..N) and auto-created
topics always get 4 partitions. If the C API is unavailable it falls back to the documented
``{"test.mock.num.brokers": 1}`` client, where every topic has 4 partitions.

>>> with MockCluster() as mock:                      # doctest: +SKIP
...     mock.create_topic("events", 8)
...     log = KafkaLog(mock.bootstrap, "events", 8)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
from typing import Any

from pipeline.errors import LogError

MOCK_AUTO_PARTITIONS = 4  # the mock's partition count for auto-created topics


# -- librdkafka's mock cluster ------------------------------------------------------------
def _librdkafka() -> ctypes.CDLL | None:
    """The librdkafka that confluent_kafka loaded (bundled wheel library), else a system one."""
    try:
        import confluent_kafka
    except ImportError:
        return None
    base = os.path.dirname(os.path.dirname(confluent_kafka.__file__))
    paths = sorted(glob.glob(os.path.join(base, "confluent_kafka.libs", "librdkafka*.so*")))
    found = ctypes.util.find_library("rdkafka")
    for path in [*paths, *([found] if found else [])]:
        try:
            lib = ctypes.CDLL(path)
            lib.rd_kafka_mock_topic_create  # noqa: B018 - probe the symbol
            return lib
        except (OSError, AttributeError):
            continue
    return None


def _bind(lib: ctypes.CDLL) -> None:
    vp, cp, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    lib.rd_kafka_conf_new.restype = vp
    lib.rd_kafka_conf_set.argtypes = [vp, cp, cp, cp, ctypes.c_size_t]
    lib.rd_kafka_conf_set.restype = i
    lib.rd_kafka_new.restype = vp
    lib.rd_kafka_new.argtypes = [i, vp, cp, ctypes.c_size_t]
    lib.rd_kafka_destroy.argtypes = [vp]
    lib.rd_kafka_mock_cluster_new.restype = vp
    lib.rd_kafka_mock_cluster_new.argtypes = [vp, i]
    lib.rd_kafka_mock_cluster_bootstraps.restype = cp
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [vp]
    lib.rd_kafka_mock_cluster_destroy.argtypes = [vp]
    lib.rd_kafka_mock_topic_create.argtypes = [vp, cp, i, i]
    lib.rd_kafka_mock_topic_create.restype = i
    lib.rd_kafka_mock_push_request_errors_array.argtypes = [
        vp,
        ctypes.c_int16,
        ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_int),
    ]


class MockCluster:
    """An in-process Kafka mock broker (tests, benchmarks). Close it when done: it owns
    librdkafka threads. Topics made with :meth:`create_topic` get exactly the requested
    partitions when the C mock API is available (``exact_partitions``)."""

    def __init__(self, num_brokers: int = 1) -> None:
        self._lib = _librdkafka()
        self._rk: int | None = None
        self._mc: int | None = None
        self._client: Any = None
        if self._lib is not None:
            _bind(self._lib)
            err = ctypes.create_string_buffer(512)
            conf = self._lib.rd_kafka_conf_new()
            self._lib.rd_kafka_conf_set(conf, b"log_level", b"3", err, 512)
            self._rk = self._lib.rd_kafka_new(0, conf, err, 512)  # 0 = producer handle
            if not self._rk:
                raise LogError(f"cannot start the mock cluster: {err.value.decode()}")
            self._mc = self._lib.rd_kafka_mock_cluster_new(self._rk, num_brokers)
            self.bootstrap: str = self._lib.rd_kafka_mock_cluster_bootstraps(self._mc).decode()
        else:
            from confluent_kafka import Producer

            self._client = Producer(
                {"test.mock.num.brokers": num_brokers, "allow.auto.create.topics": True}
            )
            md = self._client.list_topics(timeout=10)
            self.bootstrap = ",".join(f"{b.host}:{b.port}" for b in md.brokers.values())

    @property
    def exact_partitions(self) -> bool:
        return self._mc is not None

    def create_topic(self, topic: str, partitions: int, replication_factor: int = 1) -> None:
        """Create ``topic`` with ``partitions`` partitions (fallback mode: only 4 works)."""
        if self._mc is None:
            if partitions != MOCK_AUTO_PARTITIONS:
                raise LogError(
                    f"this mock cluster auto-creates topics with {MOCK_AUTO_PARTITIONS} "
                    f"partitions; {partitions} is unavailable without librdkafka's C mock API"
                )
            md = self._client.list_topics(topic, timeout=10)  # auto-creates it on the mock
            if topic not in md.topics or md.topics[topic].error is not None:
                raise LogError(f"mock cluster: topic {topic!r} was not auto-created")
            return
        assert self._lib is not None
        code = self._lib.rd_kafka_mock_topic_create(
            self._mc, topic.encode(), partitions, replication_factor
        )
        if code:
            raise LogError(f"mock cluster: creating topic {topic!r} failed (error code {code})")

    def fail_next_produce(self, *error_codes: int) -> None:
        """Make the broker answer the next Produce requests with these Kafka error codes
        (e.g. 29 TOPIC_AUTHORIZATION_FAILED), to test that delivery errors surface."""
        if self._mc is None or self._lib is None:
            raise LogError("error injection needs librdkafka's C mock API")
        arr = (ctypes.c_int * len(error_codes))(*error_codes)
        self._lib.rd_kafka_mock_push_request_errors_array(self._mc, 0, len(error_codes), arr)

    def close(self) -> None:
        if self._mc is not None and self._lib is not None:
            self._lib.rd_kafka_mock_cluster_destroy(self._mc)
            self._lib.rd_kafka_destroy(self._rk)
            self._mc = self._rk = None
        self._client = None

    def __enter__(self) -> MockCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
