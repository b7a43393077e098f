"""Fixtures for the partition-log tests: every backend behind one factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.clock import FakeClock
from pipeline.events import Payment, Session, encode
from pipeline.log import FileLog, MemoryLog, PartitionLog, open_log

BACKENDS = ["memory", "file"]  # a Kafka backend joins this list later

LogFactory = Callable[..., PartitionLog]


@pytest.fixture(params=BACKENDS)
def make_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogFactory]:
    """``make_log(num_partitions=4, name="events", **file_options)`` for each backend."""
    opened: list[PartitionLog] = []

    def factory(num_partitions: int = 4, name: str = "events", **options: object) -> PartitionLog:
        if request.param == "memory":
            log: PartitionLog = MemoryLog(name, num_partitions)
        else:
            options.setdefault("segment_bytes", 4096)
            options.setdefault("index_interval_bytes", 256)
            log = open_log(tmp_path / "log", name, num_partitions, **options)
        opened.append(log)
        return log

    yield factory
    for log in opened:
        log.close()


@pytest.fixture
def file_log(tmp_path: Path) -> Iterator[Callable[..., FileLog]]:
    """``file_log(**options)``: the file backend with small segments (rolls happen)."""
    opened: list[FileLog] = []

    def factory(num_partitions: int = 4, **options: object) -> FileLog:
        options.setdefault("segment_bytes", 2048)
        options.setdefault("index_interval_bytes", 128)
        log = open_log(tmp_path / "log", "events", num_partitions, **options)
        opened.append(log)
        return log

    yield factory
    for log in opened:
        log.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 1, tzinfo=UTC))


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event_line(i: int, user: str | None = None, ts: datetime | None = None) -> bytes:
    """A valid encoded event (session, or payment every 5th) numbered ``i``."""
    user = user or f"u{i % 97}"
    ts = ts or T0 + timedelta(seconds=i)
    if i % 5 == 0:
        return encode(
            Payment(
                event_id=f"e{i}", user_id=user, ts=ts, schema_version=1, amount=9.99, plan="basic"
            )
        )
    return encode(
        Session(
            event_id=f"e{i}",
            user_id=user,
            ts=ts,
            schema_version=1,
            watch_minutes=float(i % 60),
            device="tv",
        )
    )


@pytest.fixture
def make_event() -> Callable[..., bytes]:
    """``make_event(i, user=None, ts=None)`` -> one valid encoded event line."""
    return event_line
