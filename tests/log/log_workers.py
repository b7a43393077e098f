"""Worker processes for the multi-process log tests (run as a script, not collected).

python log_workers.py produce  TOPIC_DIR PRODUCER_ID BATCHES BATCH_SIZE SEGMENT_BYTES
python log_workers.py consume  TOPIC_DIR EXPECTED OUT_JSON
python log_workers.py commit   TOPIC_DIR GROUP START
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline.log import FileLog


def produce(topic: Path, producer: str, batches: int, size: int, segment_bytes: int) -> None:
    log = FileLog(topic, segment_bytes=segment_bytes, index_interval_bytes=256)
    seq = 0
    for b in range(batches):
        items = []
        for _ in range(size):
            key = f"user-{seq % 23}".encode()
            items.append((key, json.dumps({"p": producer, "b": b, "s": seq}).encode()))
            seq += 1
        log.produce(items)
    log.close()


def consume(topic: Path, expected: int, out: Path) -> None:
    log = FileLog(topic, index_interval_bytes=256)
    offsets = [0] * log.num_partitions
    seen: list[list] = []
    deadline = time.monotonic() + 60
    while len(seen) < expected and time.monotonic() < deadline:
        for p in range(log.num_partitions):
            for r in log.fetch(p, offsets[p], max_records=97):
                seen.append([p, r.offset, r.value.decode()])
                offsets[p] = r.offset + 1
    out.write_text(json.dumps(seen))


def commit(topic: Path, group: str, start: int) -> None:
    log = FileLog(topic)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    i = start
    print("ready", flush=True)
    while True:
        i += 1
        log.commit(group, {p: i for p in range(log.num_partitions)}, when + timedelta(seconds=i))


if __name__ == "__main__":
    cmd, topic, *rest = sys.argv[1:]
    if cmd == "produce":
        produce(Path(topic), rest[0], int(rest[1]), int(rest[2]), int(rest[3]))
    elif cmd == "consume":
        consume(Path(topic), int(rest[0]), Path(rest[1]))
    elif cmd == "commit":
        commit(Path(topic), rest[0], int(rest[1]))
    else:
        raise SystemExit(f"unknown command {cmd!r}")
