"""Kafka topic administration (the mock cluster for tests is :mod:`pipeline.testing.kafka`).

* :func:`create_topic` creates a topic with ``AdminClient.create_topics`` and, when it
  already exists, checks its partition count: a different count raises
  ``TopicMismatchError`` naming both (changing it would re-route users to other
  partitions, so it is never "fixed" silently).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.errors import LogError, TopicMismatchError


def _admin(bootstrap: str, properties: Mapping[str, Any] | None) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({**dict(properties or {}), "bootstrap.servers": bootstrap})


def topic_partitions(admin: Any, topic: str, timeout_s: float = 10.0) -> int | None:
    """Partition count of ``topic``, or None if it does not exist (never auto-creates:
    the metadata request lists all topics instead of naming this one)."""
    from confluent_kafka import KafkaException

    try:
        md = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise LogError(
            f"cannot read Kafka metadata ({exc.args[0]}); check bootstrap servers and "
            "security properties (CHURN_KAFKA_BOOTSTRAP, CHURN_KAFKA_PROPERTIES)"
        ) from None
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return None
    return len(t.partitions)


def mismatch(topic: str, actual: int, requested: int) -> TopicMismatchError:
    return TopicMismatchError(
        f"Kafka topic {topic!r} has {actual} partitions, but {requested} were configured. "
        f"Set CHURN_PARTITIONS={actual} (or num_partitions=None to use the topic's count), or "
        f"use a new topic name; do not add partitions to a live topic: changing the count "
        "re-routes users (murmur2(user) % N) and breaks per-user order and feature state."
    )


def create_topic(
    bootstrap: str,
    topic: str,
    partitions: int,
    replication_factor: int = -1,
    config: Mapping[str, str] | None = None,
    *,
    properties: Mapping[str, Any] | None = None,
    timeout_s: float = 10.0,
) -> int:
    """Create ``topic`` (``replication_factor=-1``: the broker's default) or check the
    existing one. Returns the partition count; raises ``TopicMismatchError`` if an
    existing topic has another count, ``LogError`` if creation fails."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    if not isinstance(partitions, int) or partitions < 1:
        raise LogError(f"partitions={partitions!r} must be an int >= 1")
    admin = _admin(bootstrap, properties)
    existing = topic_partitions(admin, topic, timeout_s)
    if existing is not None:
        if existing != partitions:
            raise mismatch(topic, existing, partitions)
        return existing
    new = NewTopic(
        topic, partitions, replication_factor, config={k: str(v) for k, v in (config or {}).items()}
    )
    futures = admin.create_topics([new], request_timeout=timeout_s, operation_timeout=timeout_s)
    try:
        futures[topic].result(timeout=timeout_s + 5)
    except KafkaException as exc:
        err = exc.args[0]
        if err.code() != KafkaError.TOPIC_ALREADY_EXISTS:  # lost a race: check below
            raise LogError(
                f"creating Kafka topic {topic!r} ({partitions} partitions, replication "
                f"{replication_factor}) failed: {err.str()}. Create it with your cluster's "
                f"tools (kafka-topics.sh --create --topic {topic} --partitions {partitions}) "
                "and start again."
            ) from None
    actual = topic_partitions(admin, topic, timeout_s)
    if actual is not None and actual != partitions:
        raise mismatch(topic, actual, partitions)
    return partitions
