"""Crash and corruption probes, one focused test per bug they found (an outside tester's
view: torn segments, corrupt offsets and checkpoints, a broken champion export)."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.clock import FakeClock
from pipeline.errors import LogError, StreamError
from pipeline.log import open_log
from pipeline.log.file import FileLog
from pipeline.store import Store
from pipeline.stream.champion import StaticChampion
from pipeline.stream.checkpoint import CheckpointMeta, CheckpointStore
from pipeline.stream.config import StreamConfig
from pipeline.stream.model import load_export, read_pointer
from pipeline.stream.offsets import reset_group
from pipeline.stream.report import stream_report
from pipeline.stream.supervisor import MAX_RESTARTS, Supervisor, _Proc
from pipeline.stream.worker import Worker
from pipeline.testing.stream import publish_tiny_champion, tiny_model

from .helpers import append_bad_events

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _sup(data_dir, tmp_path) -> Supervisor:
    champion = StaticChampion()
    champion.set(tiny_model(), "1")
    config = StreamConfig(group="test", model_poll_s=0.05)
    return Supervisor(data_dir, "events", f"sqlite:///{tmp_path / 'churn.db'}", champion, config)


def test_a_committed_offset_past_the_log_end_is_not_caught_up(
    data_dir, tmp_path, log, store, paths, champion, cfg
) -> None:
    """Repro: a segment lost its last record after the stream caught up; `churn stream
    --until-caught-up` stopped at once, exit 0, "caught up" - instead of letting the worker
    refuse the partition with the remedy (OffsetsPastEndError)."""
    Worker("w0", log, store, paths, cfg, partitions=[0, 1]).run(until_caught_up=True)
    sup = _sup(data_dir, tmp_path)
    assert sup.wait_for_champion(lambda: False)
    ends = {p: log.end_offset(p) for p in range(log.num_partitions)}
    assert log.committed("test") == ends and sup.caught_up()
    log.commit("test", {0: ends[0] + 1}, NOW)  # the log ends one record before the group's position
    assert not sup.caught_up()
    assert sup.lags()[0] == 0  # lag stays non-negative (autoscaler input); only caught-up changed


def test_a_deleted_checkpoint_is_replayed_not_reported_caught_up(
    data_dir, tmp_path, log, store, paths, champion, cfg, caplog
) -> None:
    """Repro: a corrupt checkpoint, removed as its error message says (rm ...ckpt); the next
    `churn stream --until-caught-up` printed "caught up, 0 events" and exited 0 without
    rebuilding the partition (its committed offset still said the log end), every time."""
    Worker("w0", log, store, paths, cfg, partitions=[0, 1]).run(until_caught_up=True)
    ends = {p: log.end_offset(p) for p in range(2)}
    ckpts = CheckpointStore(paths.checkpoints, log.name, "test")
    want = ckpts.read(1).state
    ckpts.delete(1)
    sup = _sup(data_dir, tmp_path)
    assert sup.wait_for_champion(lambda: False)
    assert log.committed("test") == ends and not sup.caught_up()  # nothing rebuilt yet
    sup._started_at = datetime.now(UTC)  # the supervisor's run begins (workers commit on the system clock)
    worker = Worker("w1", log, store, paths, cfg, partitions=[0, 1])
    with caplog.at_level(logging.WARNING, logger="pipeline.stream"):
        worker.sync_assignment()  # takes partition 1 over from the log start
    assert log.committed("test")[1] == log.start_offset(1)  # lag shows the replay
    assert "disagreed with its replay (no checkpoint" in caplog.text
    start = dict(ends)  # what the supervisor's run began from; no poll saw the replay's start,
    # the commit history since the run began does
    worker.run(until_caught_up=True)
    assert log.committed("test") == ends and sup.caught_up()
    assert ckpts.read(1).state == want  # rebuilt to the same state
    # the closing summary counts the replayed records (it said "0 events": end - start)
    assert sup.summary(time.monotonic(), start, "caught up")["events"] == ends[1] - log.start_offset(1) > 0


def test_a_corrupt_offsets_file_moved_aside_is_rebuilt_from_the_checkpoints(log, store, paths, champion, cfg) -> None:
    """The recovery the corrupt-offsets error names besides a full replay: with the file moved
    aside, each worker commits its checkpoint's offset again, so nothing is replayed or skipped."""
    Worker("w0", log, store, paths, cfg, partitions=[0, 1]).run(until_caught_up=True)
    ends = {p: log.end_offset(p) for p in range(2)}
    offsets = log.path / "groups" / "test.json"
    offsets.write_text("{ torn")
    with pytest.raises(LogError, match="move it aside"):
        log.committed("test")
    offsets.rename(offsets.with_suffix(".bad"))
    ckpts = CheckpointStore(paths.checkpoints, log.name, "test")
    want = {p: ckpts.read(p).state for p in range(2)}
    worker = Worker("w1", log, store, paths, cfg, partitions=[0, 1])
    worker.run(until_caught_up=True)
    assert log.committed("test") == ends
    assert {p: ckpts.read(p).state for p in range(2)} == want


def test_a_new_group_still_commits_nothing_before_its_first_checkpoint(log, store, paths, champion, cfg) -> None:
    worker = Worker("w0", log, store, paths, cfg, partitions=[0, 1])
    worker.sync_assignment()
    try:
        assert log.committed("test") == {}  # `churn lag` keeps showing "-" (never committed)
    finally:
        worker.shutdown()


@pytest.mark.parametrize("damage", ["torn_ubj", "garbage_skops"])
def test_a_damaged_model_export_is_one_fatal_line_not_a_crash_loop(paths, damage) -> None:
    """Repro: model.skops overwritten while the stream ran, then a worker restarted: it died
    with a BadZipFile traceback 6 times, then "worker w0 died 6 times ... see its log lines"."""
    ref = publish_tiny_champion(paths, version="1")
    export = Path(ref.path)
    if damage == "torn_ubj":
        raw = (export / "model.ubj").read_bytes()
        (export / "model.ubj").write_bytes(raw[: len(raw) // 2])
    else:
        (export / "model.ubj").unlink()
        (export / "model.skops").write_bytes(os.urandom(3000))
    with pytest.raises(StreamError, match="is damaged") as err:
        load_export(ref)
    assert str(export) in str(err.value) and "exports the champion again" in str(err.value)


def test_a_pointer_naming_another_version_than_its_export_is_refused(paths) -> None:
    """Fail closed: never score (and label rows) as v2 with the files of v1."""
    ref = publish_tiny_champion(paths, version="1")
    with pytest.raises(StreamError, match="holds churn v1, the pointer says v2"):
        load_export(replace(ref, version="2"))


def test_a_full_disk_keeps_the_old_checkpoint_and_names_the_file(tmp_path, monkeypatch) -> None:
    store = CheckpointStore(tmp_path / "ck", "events", "test")
    meta = CheckpointMeta("events", "test", 0, next_offset=5, dlq_end=0, created_at=NOW.isoformat())
    store.write(meta, b"state-1")
    real = os.write

    def full(fd: int, data: bytes) -> int:
        if len(data) > 100:  # the state chunk (the header and magic still fit)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space left") as err:
        store.write(replace(meta, next_offset=9), b"x" * 1000)
    monkeypatch.undo()
    assert err.value.errno == errno.ENOSPC and str(store.path(0)) in str(err.value)
    ck = store.read(0)
    assert ck.meta.next_offset == 5 and ck.state == b"state-1"  # the previous one, intact
    assert not list((tmp_path / "ck").glob(".*.tmp"))  # no temp file left on the full disk


def test_a_crash_looping_worker_is_reported_with_its_last_error(data_dir, tmp_path) -> None:
    """Repro: checkpoints on a full disk; the stream gave up with "worker w0 died 6 times within
    120 s (last exit exit code 1); see its log lines above" - never saying why."""
    sup = _sup(data_dir, tmp_path)
    sup.paths.workers.mkdir(parents=True, exist_ok=True)
    (sup.paths.workers / "w0.error").write_text("cannot write checkpoint /x/partition-0.ckpt (No space left on device)")
    popen = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    popen.wait()
    now = time.monotonic()
    sup.procs["w0"] = _Proc("w0", popen, restarts=[now] * MAX_RESTARTS)
    with pytest.raises(StreamError, match=r"died 6 times .* its last error: cannot write checkpoint .*No space left"):
        sup.reap()


def test_the_closing_report_says_how_many_records_were_dead_lettered(log, store, paths, champion, cfg) -> None:
    """Repro: 13 malformed events (bad JSON, missing fields, wrong types, non-UTF-8, a 20 MB
    line) went to the dead-letter topic, but `churn stream` ended with "147,682 events ... final
    lag 0" and not a word about them."""
    bad = append_bad_events(log, 1)
    huge = b'{"type":"session","event_id":"h","user_id":"u1","ts":"2026-01-02T00:00:00Z","x":"' + b"1" * (9 << 20) + b'"}'
    log.append(0, [huge])  # its dead letter is larger than one fetch's max_bytes
    before = {p: log.start_offset(p) for p in range(2)}
    Worker("w0", log, store, paths, cfg, partitions=[0, 1]).run(until_caught_up=True)
    report = stream_report(store, log, "test", before, seconds=1.0, stopped="caught up")
    assert report.as_dict()["dead_letters"] == len(bad) + 1
    assert f"dead letters: {len(bad) + 1} record(s) not applied" in "\n".join(report.lines())
    again = stream_report(store, log, "test", log.committed("test"), seconds=1.0, stopped="caught up")
    assert again.dead_letters == {} and not any("dead letters" in line for line in again.lines())


def _sealed_log(root: Path) -> FileLog:
    """One partition, 20 records per segment (sealed: 0..19, 20..39, ...)."""
    log = open_log(root, "events", num_partitions=1, segment_bytes=2000, index_interval_bytes=200)
    for i in range(5):
        log.append(0, [b'{"n":%d,"pad":"%s"}' % (j, b"x" * 40) for j in range(i * 20, (i + 1) * 20)])
    return log


def _read_all(log: FileLog, n: int) -> list:
    out, offset = [], 0
    while batch := log.fetch(0, offset, max_records=n):
        out += batch
        offset = batch[-1].offset + 1
    return out


@pytest.mark.parametrize("n", [7, 1000])
@pytest.mark.parametrize("damage", ["newline_added", "newline_overwritten"])
def test_a_sealed_segment_edited_in_the_middle_is_an_error_not_a_skip_or_a_stall(tmp_path, damage, n) -> None:
    """Repro: one byte of a sealed segment overwritten. A newline written into a record handed
    out offset 20 twice (its own segment's last line, then the next segment's first) and
    skipped record 20; an overwritten newline stalled every consumer at offset 19, no error."""
    _sealed_log(tmp_path).close()
    seg = tmp_path / "events" / "partition-0" / "00000000000000000000.log"
    raw = bytearray(seg.read_bytes())
    raw[30 if damage == "newline_added" else raw.index(b"\n")] = 10 if damage == "newline_added" else 32
    seg.write_bytes(bytes(raw))
    log = open_log(tmp_path, "events")
    with pytest.raises(LogError, match=r"00000000000000000000\.log holds (more|fewer) records than its offsets 0\.\.19"):
        _read_all(log, n)


def test_an_intact_multi_segment_log_reads_every_offset_once(tmp_path) -> None:
    log = _sealed_log(tmp_path)
    for n in (1, 7, 20, 1000):
        got = _read_all(open_log(tmp_path, "events"), n)
        assert [r.offset for r in got] == list(range(100))
        assert all(r.value.startswith(b'{"n":%d,' % r.offset) for r in got)
    assert [r.offset for r in log.fetch(0, 15, max_records=10)] == list(range(15, 20))  # stops at the seal


@pytest.mark.parametrize("damage", ["deleted", "garbage", "export_gone"])
def test_a_champion_pointer_broken_under_a_running_stream_is_written_again(data_dir, tmp_path, caplog, damage) -> None:
    """Repro: champion.json deleted (or overwritten) while the stream ran; a worker restarted
    after that waited for it forever ("waiting for the champion export") - or, overwritten,
    stopped the whole stream as a fatal error - though the supervisor knew the champion."""
    sup = _sup(data_dir, tmp_path)
    assert sup.wait_for_champion(lambda: False)
    pointer = sup.paths.champion
    if damage == "deleted":
        pointer.unlink()
    elif damage == "garbage":
        pointer.write_text('{"version": "1", "path": ')
    else:
        shutil.rmtree(sup.model.path)
    with caplog.at_level(logging.WARNING, logger="pipeline.stream"):
        sup.follow_champion()
    assert read_pointer(pointer) == sup.model and load_export(sup.model).version == "1"
    assert "exporting churn v1 again" in caplog.text
    caplog.clear()
    sup.follow_champion()  # intact now: nothing to do
    assert "again" not in caplog.text


def test_a_worker_keeps_its_champion_while_the_pointer_is_unreadable(log, store, paths, champion, cfg, caplog) -> None:
    clock = FakeClock(NOW)
    worker = Worker("w0", log, store, paths, cfg, partitions=[0], clock=clock)
    try:
        worker.check_model()
        assert worker.model.version == "1"
        paths.champion.write_text("{torn")
        clock.advance(cfg.model_check_s)
        with caplog.at_level(logging.ERROR, logger="pipeline.stream"):
            worker.check_model()  # no exception: not a fatal error for the whole stream
        assert worker.model.version == "1" and "Still scoring with v1" in caplog.text
    finally:
        worker.shutdown()


@pytest.mark.parametrize("damage", ["deleted", "emptied"])
def test_a_lost_store_is_refused_not_refilled_with_the_new_events_only(
    tmp_path, log, store, paths, champion, cfg, damage
) -> None:
    """Repro: churn.db deleted, or cut to 0 bytes (a valid empty SQLite database), under a
    group with checkpoints; `churn stream --until-caught-up` created a fresh store, resumed
    from the checkpoints and exited 0 "caught up": only the users of the events after them
    were scored (1,271 of 2,012 users), the others were gone from the store and the dashboard
    for good, with their whole score history, and nothing said so."""
    Worker("w0", log, store, paths, cfg, partitions=[0, 1]).run(until_caught_up=True)
    scored = len(store.current_scores(top_k=None, active_only=False))
    assert scored > 0
    store.close()
    for f in tmp_path.glob("churn.db*"):
        f.unlink()
    if damage == "emptied":
        (tmp_path / "churn.db").write_bytes(b"")
    lost = Store(f"sqlite:///{tmp_path / 'churn.db'}", clock=FakeClock())
    try:
        worker = Worker("w1", log, lost, paths, cfg, partitions=[0, 1])
        try:
            with pytest.raises(StreamError, match="holds no score of partition 0") as err:
                worker.sync_assignment()
        finally:
            worker.shutdown()
        assert "reset-offsets earliest" in str(err.value) and "partition-0.ckpt" in str(err.value)
        assert len(lost.current_scores(top_k=None, active_only=False)) == 0  # nothing written
        # the named recovery: rebuild the store from the log, every user scored again
        reset_group(log, paths.data_dir, "test", "earliest", NOW)
        Worker("w2", log, lost, paths, cfg, partitions=[0, 1]).run(until_caught_up=True)
        assert len(lost.current_scores(top_k=None, active_only=False)) >= scored
    finally:
        lost.close()


def test_a_checkpoint_of_users_never_scored_needs_no_store_rows(log, store, paths, champion, cfg) -> None:
    """The check above refuses only a checkpoint that remembers users: one taken before any
    user was applied (e.g. a partition whose records were all dead letters) resumes."""
    worker = Worker("w0", log, store, paths, cfg, partitions=[0])
    worker.sync_assignment()
    part = worker.parts[0]
    worker.checkpoint(part)  # no records applied yet: an empty feature state
    worker.shutdown()
    again = Worker("w1", log, store, paths, cfg, partitions=[0])
    try:
        again.sync_assignment()
        assert again.parts[0].restored_from is not None
    finally:
        again.shutdown()


def test_a_checkpoint_behind_its_committed_offset_is_not_caught_up(
    data_dir, tmp_path, log, store, paths, champion, cfg
) -> None:
    """Repro: an older copy of a checkpoint restored (from a backup) while the committed
    offset says the log end: `churn stream --until-caught-up` printed "caught up, 0 events"
    before its worker could commit the checkpoint's offset, and the records after the
    checkpoint were never applied again; every later such run did the same."""
    ckpts = CheckpointStore(paths.checkpoints, log.name, "test")
    early = Worker("w0", log, store, paths, cfg, partitions=[0, 1])
    early.sync_assignment()
    early.check_model()
    early.step()  # a batch of each partition, then a checkpoint there
    early.checkpoint(early.parts[0])
    early.shutdown()
    older = ckpts.path(0).read_bytes()
    behind = ckpts.next_offset(0)
    Worker("w1", log, store, paths, cfg, partitions=[0, 1]).run(until_caught_up=True)
    ends = {p: log.end_offset(p) for p in range(2)}
    assert 0 < behind < ends[0] and ckpts.next_offset(0) == ends[0]
    sup = _sup(data_dir, tmp_path)
    assert sup.wait_for_champion(lambda: False) and sup.caught_up()
    ckpts.path(0).write_bytes(older)  # the backup put back
    assert ckpts.next_offset(0) == behind and log.committed("test") == ends
    assert not sup.caught_up()
    Worker("w2", log, store, paths, cfg, partitions=[0, 1]).run(until_caught_up=True)
    assert ckpts.next_offset(0) == ends[0] and sup.caught_up()  # the records after it were applied again
    ckpts.path(1).write_bytes(b"CHURN")  # a header that cannot be read is not "caught up" either
    assert ckpts.next_offset(1) is None and not sup.caught_up()
