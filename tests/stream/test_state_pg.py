"""The PostgreSQL stream state backend: checkpoints + leases with fencing epochs.

Runs against the PostgreSQL server on 127.0.0.1:5432 (database ``test``), each test in
its own schema, dropped after; skipped with the reason when no server answers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.clock import FakeClock
from pipeline.errors import CheckpointCorruptError, ConfigError, FencedError
from pipeline.stream.checkpoint import CheckpointMeta
from pipeline.stream.state import CheckpointBackend, Lease, file_backend
from pipeline.stream.state_pg import PgStateBackend, checkpoints
from tests.store.conftest import PG_URLS, drop_schema, pg_url

WRITER = str(Path(__file__).with_name("state_pg_writer.py"))
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg() -> Iterator[tuple[str, str]]:
    url = pg_url()
    if url is None:
        pytest.skip(f"no PostgreSQL server answers at {PG_URLS} (set CHURN_TEST_PG_URL)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        yield url, schema
    finally:
        drop_schema(url, schema)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 2, tzinfo=UTC))


@pytest.fixture
def backend(pg, clock) -> Iterator[Callable[..., PgStateBackend]]:
    """``backend(owner)``: one worker's view of the group's state (closed after)."""
    opened: list[PgStateBackend] = []

    def make(owner: str, ttl: float = 10.0) -> PgStateBackend:
        b = PgStateBackend(
            pg[0], "events", "g", schema=pg[1], owner=owner, lease_ttl_s=ttl, clock=clock
        )
        opened.append(b)
        return b

    yield make
    for b in opened:
        b.close()


def meta(p: int, next_offset: int, **kw) -> CheckpointMeta:
    return CheckpointMeta(
        "events", "g", p, next_offset, kw.pop("dlq_end", 0), "2026-01-02T00:00:00+00:00", **kw
    )


def test_checkpoint_round_trip_keeps_state_offsets_and_dedup(backend) -> None:
    a = backend("a")
    assert a.read(1) is None
    assert a.lease(1).try_acquire()
    where = a.write(meta(1, 120, dlq_end=7, model_version="3"), b"\x00state\xff", dedup=b"ids")
    ck = a.read(1)
    assert ck.meta == meta(1, 120, dlq_end=7, model_version="3")
    assert (ck.state, ck.dedup, ck.epoch) == (b"\x00state\xff", b"ids", 1)
    assert ck.path == where and "stream_checkpoints" in where and "partition 1" in where
    a.write(meta(1, 180), b"newer")  # replaced in place
    assert (a.read(1).meta.next_offset, a.read(1).state, a.read(1).dedup) == (180, b"newer", b"")
    assert a.read(0) is None  # partitions are separate rows


def test_write_without_the_lease_is_refused(backend) -> None:
    a = backend("a")
    with pytest.raises(
        FencedError, match=r"does not hold its lease; take it first \(backend.lease\(2\)"
    ):
        a.write(meta(2, 5), b"s")
    assert a.read(2) is None


def test_live_lease_is_exclusive_and_release_hands_over_at_once(backend) -> None:
    a, b = backend("a"), backend("b")
    assert a.lease(0).try_acquire()
    assert not b.lease(0).try_acquire()
    assert a.lease(0).try_acquire()  # the holder extends it, same epoch
    assert a.lease(0).epoch == 1
    a.lease(0).release()
    assert not a.lease(0).held
    assert b.lease(0).try_acquire() and b.lease(0).epoch == 2
    assert a.owners()[0][:2] == ("b", 2)


def test_stale_owner_is_fenced_after_takeover(backend, clock) -> None:
    a, b = backend("a", ttl=10), backend("b", ttl=10)
    assert a.lease(0).try_acquire()
    a.write(meta(0, 100), b"a-100")
    clock.advance(11)  # a stalls past its lease (GC pause, network partition)
    assert b.lease(0).try_acquire() and b.lease(0).epoch == 2
    b.write(meta(0, 150), b"b-150")
    with pytest.raises(FencedError) as err:
        a.write(meta(0, 130), b"a-130")  # a does not know yet
    msg = str(err.value)
    assert (
        "lease epoch 1" in msg
        and "epoch 2 held by 'b'" in msg
        and "Stop processing partition 0" in msg
    )
    assert not a.lease(0).held  # a learns it lost the partition
    ck = a.read(0)
    assert (ck.meta.next_offset, ck.state, ck.epoch) == (150, b"b-150", 2)  # b's write stands
    assert not a.lease(0).renew()
    assert not a.lease(0).try_acquire()  # b's lease is live


def test_expired_but_untaken_lease_can_still_write_and_renew(backend, clock) -> None:
    a, b = backend("a", ttl=5), backend("b", ttl=5)
    assert a.lease(3).try_acquire()
    clock.advance(6)
    a.write(meta(3, 10), b"s")  # nobody took it: epoch 1 is still the newest
    assert a.lease(3).renew()
    assert not b.lease(3).try_acquire()  # renewed: live again
    clock.advance(6)
    assert b.lease(3).try_acquire() and b.lease(3).epoch == 2


def test_epochs_never_go_back_even_if_leases_are_reset(backend, pg) -> None:
    a, b = backend("a"), backend("b")
    for _ in range(3):
        assert a.lease(0).try_acquire()
        a.write(meta(0, 1), b"s")
        a.lease(0).release()
    assert a.read(0).epoch == 3
    with a.engine.begin() as conn:  # an operator drops the lease rows
        conn.exec_driver_sql(f'DELETE FROM "{pg[1]}".stream_leases')
    assert b.lease(0).try_acquire() and b.lease(0).epoch == 4  # above the stored checkpoint


def test_newer_checkpoint_epoch_refuses_an_older_writer(backend, pg) -> None:
    a = backend("a")
    assert a.lease(0).try_acquire()
    a.write(meta(0, 1), b"s")
    with a.engine.begin() as conn:  # a checkpoint from a later epoch appears (restored backup)
        conn.execute(checkpoints.update().values(epoch=9))
    with pytest.raises(
        FencedError, match="a checkpoint of epoch 9 is stored, newer than this writer's epoch 1"
    ):
        a.write(meta(0, 2), b"t")
    assert a.read(0).meta.next_offset == 1


def test_unreadable_header_names_the_row_and_the_fix(backend) -> None:
    a = backend("a")
    assert a.lease(0).try_acquire()
    a.write(meta(0, 1), b"s")
    with a.engine.begin() as conn:
        conn.execute(checkpoints.update().values(meta={"topic": "events", "surprise": 1}))
    with pytest.raises(
        CheckpointCorruptError, match=r"unreadable header.*DELETE FROM stream_checkpoints"
    ):
        a.read(0)


def test_settings_are_validated_with_the_remedy(pg) -> None:
    with pytest.raises(ConfigError, match="needs PostgreSQL"):
        PgStateBackend("sqlite:///x.db", "events", "g")
    with pytest.raises(ConfigError, match="lease_ttl_s=0"):
        PgStateBackend(pg[0], "events", "g", schema=pg[1], lease_ttl_s=0)
    with pytest.raises(ConfigError, match="schema 'bad-name'"):
        PgStateBackend(pg[0], "events", "g", schema="bad-name")


def test_both_backends_satisfy_the_interface(backend, tmp_path) -> None:
    for b in (backend("a"), file_backend(tmp_path / "ck", "events", "g")):
        assert isinstance(b, CheckpointBackend)
        lease = b.lease(0)
        assert isinstance(lease, Lease)
        assert lease.try_acquire() and lease.held
        b.write(meta(0, 42), b"snap")
        assert (b.read(0).meta.next_offset, b.read(0).state) == (42, b"snap")
        b.clean_temp(0)
        b.delete(0)
        assert b.read(0) is None
        lease.release()
        assert not lease.held


def test_two_processes_racing_for_a_partition_lose_no_update(pg, tmp_path) -> None:
    """Two writers that keep losing their 50 ms leases mid-work: every write the database
    accepted continues from the previous accepted one (no lost update, no torn state)."""
    url, schema = pg
    outs = [tmp_path / f"{n}.json" for n in ("w1", "w2")]
    procs = [
        subprocess.Popen([sys.executable, WRITER, url, schema, n, "4", str(o)], cwd=ROOT)
        for n, o in zip(("w1", "w2"), outs, strict=True)
    ]
    try:
        for p in procs:
            assert p.wait(timeout=120) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    w1, w2 = (json.loads(o.read_text()) for o in outs)
    state = PgStateBackend(url, "events", "g", schema=schema)
    try:
        ck = state.read(0)
    finally:
        state.close()
    accepted = w1["accepted"] + w2["accepted"]
    assert ck.meta.next_offset == accepted, (w1, w2)
    assert ck.state == f"{accepted}".encode() and ck.meta.dlq_end == accepted
    assert w1["torn"] == w2["torn"] == 0
    # the race really happened: both owned it, and stale writes were refused
    assert w1["accepted"] > 0 and w2["accepted"] > 0
    assert w1["refused"] + w2["refused"] > 0
    assert w1["takeovers"] + w2["takeovers"] >= 3


def test_renew_all_extends_held_leases_and_reports_the_lost_ones(backend, clock) -> None:
    a, b = backend("a", ttl=5), backend("b", ttl=5)
    assert a.lease(0).try_acquire() and a.lease(1).try_acquire()
    clock.advance(6)  # a paused past its TTL; b takes partition 1 meanwhile
    assert b.lease(1).try_acquire()
    assert a.renew_all() == [1]
    assert a.lease(0).held and not a.lease(1).held
    clock.advance(4)  # partition 0 was renewed, so it is still a's
    assert not b.lease(0).try_acquire()
    with pytest.raises(FencedError):
        a.write(meta(1, 10), b"stale")
    assert a.renew_all() == []


def test_host_events_are_recorded_per_group(backend) -> None:
    a = backend("a")
    a.record_event("error", "no champion model: nothing scored")
    assert a.events() == [("a", "error", "no champion model: nothing scored")]
