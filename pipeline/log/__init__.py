"""Kafka-style partitioned event log: file segments by default, same API for Kafka later.

>>> from pipeline.log import MemoryLog
>>> log = MemoryLog(num_partitions=4)
>>> log.produce([(b"user-1", b'{"x":1}')])
{0: (0, 1)}
"""

from pipeline.log.base import (
    CommitEntry,
    PartitionInfo,
    PartitionLog,
    Record,
    ResetTo,
    TopicInfo,
)
from pipeline.log.deadletter import (
    DeadLetter,
    DeadLetters,
    dead_letter_log,
    decode_batch,
    decode_values,
    parse_dead_letter,
)
from pipeline.log.file import DEFAULT_PARTITIONS, FileLog, file_options, open_log
from pipeline.log.kafka import KafkaLog, open_configured_log
from pipeline.log.lag import (
    HEADERS as LAG_HEADERS,
)
from pipeline.log.lag import (
    PartitionLag,
    Status,
    describe_group,
    describe_rows,
    evaluate_status,
    lag_seconds,
    past_end_problem,
)
from pipeline.log.memory import MemoryLog
from pipeline.log.partition import SegmentMeta
from pipeline.log.partitioner import murmur2, murmur2_many, partition_for, partition_for_many
from pipeline.log.retention import DeletedSegment, RetentionPolicy, apply_retention
from pipeline.log.tail import resolve_offset, tail

__all__ = [
    "DEFAULT_PARTITIONS",
    "LAG_HEADERS",
    "CommitEntry",
    "DeadLetter",
    "DeadLetters",
    "DeletedSegment",
    "FileLog",
    "KafkaLog",
    "MemoryLog",
    "PartitionInfo",
    "PartitionLag",
    "PartitionLog",
    "Record",
    "ResetTo",
    "RetentionPolicy",
    "SegmentMeta",
    "Status",
    "TopicInfo",
    "apply_retention",
    "dead_letter_log",
    "decode_batch",
    "decode_values",
    "describe_group",
    "describe_rows",
    "evaluate_status",
    "file_options",
    "lag_seconds",
    "murmur2",
    "murmur2_many",
    "open_configured_log",
    "open_log",
    "parse_dead_letter",
    "partition_for",
    "partition_for_many",
    "past_end_problem",
    "resolve_offset",
    "tail",
]
