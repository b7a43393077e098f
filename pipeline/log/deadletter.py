"""Dead letters: events that fail validation are kept with the reason, counted, skipped.

A bad event must never stop consumption and never vanish. It goes to the dead-letter
topic ``<topic>.dlq`` (same partition number as its source, so per-partition order
is kept) as one JSON line::

    {"source_topic": "events", "source_partition": 2, "source_offset": 1041,
     "reason": "Expected `float`, got `str`", "field": "$.amount",
     "at": "2026-01-01T00:00:00Z", "value": "<original line>", "value_encoding": "utf-8"}

``value`` is the original bytes as text when they are valid UTF-8, else base64 with
``value_encoding: "base64"``. ``at`` comes from the injected clock.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import msgspec

from pipeline.clock import Clock
from pipeline.errors import EventDecodeError
from pipeline.events import Event, try_decode
from pipeline.log.base import PartitionLog, Record


class DeadLetter(msgspec.Struct, forbid_unknown_fields=True):
    source_topic: str
    source_partition: int
    source_offset: int
    reason: str
    field: str
    at: datetime
    value: str
    value_encoding: str  # "utf-8" or "base64"

    def original(self) -> bytes:
        """The source record's bytes, exactly."""
        if self.value_encoding == "base64":
            return base64.b64decode(self.value)
        return self.value.encode()


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(DeadLetter)


def parse_dead_letter(raw: bytes) -> DeadLetter:
    return _dec.decode(raw)


class DeadLetters:
    """Routes invalid records of ``source_topic`` to ``log`` and counts them."""

    def __init__(self, log: PartitionLog, clock: Clock, source_topic: str) -> None:
        self.log = log
        self.clock = clock
        self.source_topic = source_topic
        self.count = 0
        self.by_reason: Counter[str] = Counter()

    def send(self, partition: int, items: Sequence[tuple[int, bytes, EventDecodeError]]) -> None:
        """Append ``(offset, raw, error)`` items of one source partition in one batch."""
        if not items:
            return
        now = self.clock.now()
        lines = []
        for offset, raw, err in items:
            try:
                text, encoding = raw.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                text, encoding = base64.b64encode(raw).decode("ascii"), "base64"
            dl = DeadLetter(
                self.source_topic, partition, offset, err.reason, err.field, now, text, encoding
            )
            lines.append(_enc.encode(dl))
            self.by_reason[err.reason] += 1
        self.log.append(partition % self.log.num_partitions, lines)
        self.count += len(items)


def decode_values(
    partition: int, first_offset: int, values: Sequence[bytes], dlq: DeadLetters
) -> tuple[list[Event], int]:
    """Decode consecutive records starting at ``first_offset``; invalid ones go to
    ``dlq``. Returns ``(events in order, number dead-lettered)``."""
    decoded = [try_decode(v) for v in values]
    bad = [
        (first_offset + i, values[i], e)
        for i, e in enumerate(decoded)
        if type(e) is EventDecodeError
    ]
    if not bad:
        return decoded, 0  # type: ignore[return-value]  # no errors in it
    dlq.send(partition, bad)  # type: ignore[arg-type]
    return [e for e in decoded if type(e) is not EventDecodeError], len(bad)  # type: ignore[misc]


def decode_batch(records: Sequence[Record], dlq: DeadLetters) -> tuple[list[Event], int]:
    """Decode fetched records (any partitions); invalid ones go to ``dlq``."""
    events: list[Event] = []
    dead: dict[int, list[tuple[int, bytes, EventDecodeError]]] = {}
    for r in records:
        e = try_decode(r.value)
        if type(e) is EventDecodeError:
            dead.setdefault(r.partition, []).append((r.offset, r.value, e))
        else:
            events.append(e)  # type: ignore[arg-type]
    for p, items in dead.items():
        dlq.send(p, items)
    return events, sum(len(v) for v in dead.values())


def dead_letter_log(log: PartitionLog) -> PartitionLog:
    """The ``<topic>.dlq`` companion of ``log``, same partition count and backend."""
    from pipeline.log.file import FileLog, open_log
    from pipeline.log.memory import MemoryLog

    if isinstance(log, FileLog):
        return open_log(log.path.parent, f"{log.name}.dlq", log.num_partitions)
    if isinstance(log, MemoryLog):
        return MemoryLog(f"{log.name}.dlq", log.num_partitions)
    from pipeline.log.kafka import KafkaLog

    if isinstance(log, KafkaLog):
        return log.sibling(f"{log.name}.dlq")
    raise TypeError(
        f"no dead-letter topic convention for {type(log).__name__}; pass a log explicitly"
    )
