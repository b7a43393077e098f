"""The configured backend across processes and for topic admin (file or Kafka).

* :func:`log_config` / :func:`open_log_config`: the log-opening fields of the Settings
  as JSON, so the stream's supervisor can hand them to its worker processes and each
  opens the same backend with the same options.
* :func:`create_configured_topics` (``churn topics --create``) and
  :func:`kafka_topic_infos` (``churn topics`` on Kafka).

>>> cfg = log_config(settings)                              # doctest: +SKIP
>>> log = open_log_config("data", "events", cfg)            # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.errors import ConfigError
from pipeline.log import kafka_admin
from pipeline.log.base import PartitionLog, TopicInfo
from pipeline.log.kafka import KafkaLog, kafka_options, open_configured_log, requested_partitions

# Settings fields that decide how a log is opened: what the stream's supervisor hands
# its worker processes (JSON), so they open the same backend with the same options.
LOG_FIELDS = (
    "log_backend", "partitions", "kafka_bootstrap", "kafka_properties",
    "kafka_replication_factor", "kafka_timeout_s", "log_segment_bytes",
    "log_index_interval_bytes", "log_fsync", "log_fsync_interval_s", "retention_hours",
    "retention_bytes", "retention_allow_uncommitted",
)  # fmt: skip


def log_config(settings: Any) -> dict[str, Any]:
    """The log-opening fields of a :class:`pipeline.config.Settings`, JSON-able
    (backend, bootstrap servers, librdkafka properties, file options)."""
    out = {f: getattr(settings, f) for f in LOG_FIELDS if hasattr(settings, f)}
    if isinstance(out.get("kafka_properties"), Mapping):
        out["kafka_properties"] = dict(out["kafka_properties"])
    return out


def open_log_config(
    data_dir: Any, topic: str, config: Mapping[str, Any] | None, *, create: bool = False
) -> PartitionLog:
    """Open ``topic`` as :func:`log_config` describes it (``None``: the file backend with
    default options), under ``data_dir`` for the file backend."""
    from pipeline.config import load_settings

    fields = {k: v for k, v in (config or {"log_backend": "file"}).items() if k in LOG_FIELDS}
    # explicit values win over CHURN_* variables; fields left out keep their defaults
    settings = load_settings(data_dir=data_dir, topic=topic, **fields)
    return open_configured_log(settings, topic, create=create)


def create_configured_topics(settings: Any) -> list[tuple[str, int, bool]]:
    """``churn topics --create``: the configured topic and its ``<topic>.dlq`` with
    ``settings.partitions`` partitions (Kafka: replication factor
    ``settings.kafka_replication_factor``). An existing topic is kept; a file topic with
    another count than one the user asked for raises ``TopicMismatchError``. Returns ``(name, partitions, created)``."""
    names = (settings.topic, f"{settings.topic}.dlq")
    out = []
    if getattr(settings, "log_backend", "file") == "file":
        from pipeline.log.file import file_options, open_log

        for name in names:
            existed = (settings.log_dir / name / "topic.json").exists()
            n = requested_partitions(settings) if existed else settings.partitions  # the default is for new ones
            with open_log(settings.log_dir, name, n, **file_options(settings)) as log:
                out.append((name, log.num_partitions, not existed))
        return out
    bootstrap = getattr(settings, "kafka_bootstrap", None)
    if not bootstrap:
        raise ConfigError(
            "log_backend=kafka needs bootstrap servers: set CHURN_KAFKA_BOOTSTRAP=host:port"
        )
    opts = kafka_options(settings)
    admin = kafka_admin._admin(bootstrap, opts["properties"])
    for name in names:
        existed = kafka_admin.topic_partitions(admin, name, opts["timeout_s"]) is not None
        n = kafka_admin.create_topic(
            bootstrap, name, settings.partitions, opts["replication_factor"],
            properties=opts["properties"], timeout_s=opts["timeout_s"],
        )  # fmt: skip
        out.append((name, n, not existed))
    return out


def kafka_topic_infos(settings: Any) -> list[TopicInfo]:
    """``churn topics`` on Kafka: the configured topic and its ``.dlq`` (if present), with
    offsets from the broker's watermarks and the groups that committed on them."""
    log = open_configured_log(settings, create=False)  # missing: one clear LogError
    if not isinstance(log, KafkaLog):
        raise ConfigError(f"kafka_topic_infos needs log_backend=kafka, not {type(log).__name__}")
    try:
        infos = [log.topic_info()]
        if kafka_admin.topic_partitions(log._admin, f"{log.name}.dlq", log.timeout_s):
            with log.sibling(f"{log.name}.dlq", create=False) as dlq:
                infos.append(dlq.topic_info())
    finally:
        log.close()
    return infos
