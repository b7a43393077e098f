"""Issue 16 items 2 and 7: offsets and checkpoints agree with the log and with each other.

* A truncated segment (or any log shorter than the group's position) is reported in one
  line with the remedy by `churn lag` and refused by the stream, never skipped silently;
  so is a log cut and written again at the same offsets (the checkpoint's fingerprint of
  the last record it applied no longer matches).
* `churn lag --reset-offsets` moves the stream checkpoints with the offsets (or refuses
  while the stream runs), so the stream does the work and `--until-caught-up` returns.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest

from churn.cli.app import main
from pipeline.log import segment as sg
from pipeline.stream.champion import StaticChampion
from pipeline.stream.checkpoint import CheckpointStore, PartitionLease
from pipeline.stream.config import StreamConfig
from pipeline.stream.offsets import OffsetsPastEndError, reset_group
from pipeline.stream.supervisor import Supervisor
from pipeline.stream.worker import Worker
from pipeline.testing.stream import tiny_model

from .helpers import run_in_thread, states

NOW = datetime(2026, 2, 1, tzinfo=UTC)


def churn(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def lag(capsys, data_dir, *extra: str) -> tuple[int, str, str]:
    return churn(capsys, "--data-dir", str(data_dir), "lag", "--group", "test", *extra)


def cut(log, partition: int, nbytes: int) -> None:
    """What the probe did: chop bytes off the partition's last segment, outside the log."""
    seg = sg.log_path(log.path / f"partition-{partition}", sg.list_bases(log.path / f"partition-{partition}")[-1])
    os.truncate(seg, seg.stat().st_size - nbytes)


def session(i: int) -> bytes:
    return json.dumps({"type": "session", "event_id": f"new-{i}", "user_id": "u0000001",
                       "ts": "2026-01-30T23:00:00+00:00", "schema_version": 1,
                       "watch_minutes": 5.0, "device": "tv"}).encode()  # fmt: skip


def run(log, store, paths, cfg, name="w"):
    return Worker(name, log, store, paths, cfg, partitions=[0, 1]).run(until_caught_up=True)


# -- item 2 -------------------------------------------------------------------------------
def test_truncated_segment_is_reported_by_lag_and_refused_by_the_stream(
    log, store, paths, champion, cfg, capsys
) -> None:
    run(log, store, paths, cfg)
    end = log.end_offset(0)
    code, out, err = lag(capsys, paths.data_dir)
    assert code == 0 and "PAST-END" not in out
    cut(log, 0, 40)  # the last record is now torn: the log ends one record earlier
    assert log.end_offset(0) == end - 1
    code, out, err = lag(capsys, paths.data_dir)
    assert code == 1 and "PAST-END" in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"offset {end} of partition 0 (topic 'events'), but the log ends at {end - 1}" in lines[0]
    assert "--reset-offsets latest" in lines[0] and "Traceback" not in err
    with pytest.raises(OffsetsPastEndError, match="would be skipped silently"):
        run(log, store, paths, cfg, "w1")
    # the remedy the line names: accept the loss; the stream resumes at the log end and
    # reads every record written from there, none skipped
    code, _, err = lag(capsys, paths.data_dir, "--reset-offsets", "latest")
    assert code == 0 and "resume at the log end" in err
    log.append(0, [session(i) for i in range(10)])
    summary = run(log, store, paths, cfg, "w2")
    assert summary["events"] == 10 and log.committed("test")[0] == end + 9


def test_a_log_cut_below_a_running_workers_position_is_refused(log, store, paths, champion, cfg) -> None:
    """The worker asks for the log end only when within a batch of it (``Worker.step``);
    a log cut meanwhile below its position makes the next fetch come back short, which
    forgets the remembered end, and the step after that refuses as a fresh start does."""
    from dataclasses import replace

    w = Worker("w", log, store, paths, replace(cfg, batch_size=100), partitions=[0])
    try:
        w.sync_assignment()
        w.check_model()
        assert w.step()  # one batch of partition 0: its end is now remembered, far ahead
        part = w.parts[0]
        assert part.position == 100 and part.known_end > 200
        seg = sg.log_path(log.path / "partition-0", sg.list_bases(log.path / "partition-0")[-1])
        data = seg.read_bytes()
        keep = len(b"".join(data.splitlines(keepends=True)[:50]))  # 50 records: below position 100
        os.truncate(seg, keep)
        w.step()  # fetches at 100 from the remembered end: nothing there, the end is forgotten
        assert part.position == 100 and part.known_end == -1
        with pytest.raises(OffsetsPastEndError, match="would be skipped silently"):
            w.step()
    finally:
        w.shutdown()


def test_committed_offsets_past_the_end_with_good_checkpoints_say_the_stream_realigns(
    log, store, paths, champion, cfg, capsys
) -> None:
    """Only the committed offset is past the end (a restored offsets file, a crash between
    checkpoint and commit): the checkpoints still resume inside the log, so `churn lag` says
    the stream realigns instead of calling the records gone, and the stream does."""
    run(log, store, paths, cfg)
    ends = {p: log.end_offset(p) for p in range(2)}
    log.commit("test", {0: ends[0] + 5}, NOW)
    code, out, err = lag(capsys, paths.data_dir)
    assert code == 0 and "PAST-END" in out  # the column still shows it
    assert f"stream's checkpoints resume inside it (at {{0: {ends[0]}}})" in err and "are gone" not in err
    run(log, store, paths, cfg, "w1")
    assert log.committed("test") == ends
    code, out, err = lag(capsys, paths.data_dir)
    assert code == 0 and "PAST-END" not in out and err == ""


def test_log_cut_and_rewritten_at_the_same_offsets_is_refused(log, store, paths, champion, cfg, capsys) -> None:
    run(log, store, paths, cfg)
    end = log.end_offset(1)
    cut(log, 1, log.segments(1)[-1].bytes // 2)  # half the active segment
    log.append(1, [session(i) for i in range(end)])  # more than was lost: offsets look fine
    assert log.end_offset(1) > end
    code, out, err = lag(capsys, paths.data_dir)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and f"record at offset {end - 1} is not the one it applied" in lines[0]
    with pytest.raises(OffsetsPastEndError, match="written again at the same offsets"):
        run(log, store, paths, cfg, "w1")


def test_the_worker_refuses_a_log_that_shrinks_under_it(log, store, paths, champion, cfg) -> None:
    w = Worker("w0", log, store, paths, cfg, partitions=[0, 1])
    w.sync_assignment()
    w.check_model()
    while w.step():
        pass
    cut(log, 0, 40)
    with pytest.raises(OffsetsPastEndError):
        w.step()
    w.shutdown()


# -- item 7 -------------------------------------------------------------------------------
def supervised_until_caught_up(data_dir):
    """``stream()``: one supervised run (one worker, a tiny champion) until caught up; its summary."""
    champion = StaticChampion()
    champion.set(tiny_model(), "1")
    sup_cfg = StreamConfig(group="test", batch_size=500, max_wait_s=0.05, flush_interval_s=0.1,
                           heartbeat_interval_s=0.5, metrics_interval_s=1.0, workers=1, autoscale=False)  # fmt: skip

    def stream() -> dict:
        sup = Supervisor(data_dir, "events", f"sqlite:///{data_dir / 'churn.db'}", champion, sup_cfg)
        th, out = run_in_thread(sup, until_caught_up=True, max_seconds=90)
        th.join(timeout=150)
        assert not th.is_alive() and "error" not in out, out.get("error")
        return out["summary"]

    return stream


def test_reset_to_earliest_rebuilds_from_the_start_and_until_caught_up_returns(
    log, store, paths, data_dir, cfg, capsys
) -> None:
    stream = supervised_until_caught_up(data_dir)

    first = stream()
    ends = {p: log.end_offset(p) for p in range(2)}
    assert first["stopped"] == "caught up" and log.committed("test") == ends
    want = states(paths, log)
    code, out, err = lag(capsys, data_dir, "--reset-offsets", "earliest")
    assert code == 0 and "deleted the stream checkpoints of partitions [0, 1]" in err
    assert log.committed("test") == {0: 0, 1: 0}
    assert all(CheckpointStore(paths.checkpoints, "events", "test").read(p) is None for p in range(2))
    again = stream()  # replays everything, then returns
    assert again["stopped"] == "caught up" and again["total_lag"] == 0
    assert states(paths, log) == want  # the same features, rebuilt from the start


def test_reset_is_refused_while_a_worker_holds_a_partition(log, store, paths, champion, cfg) -> None:
    run(log, store, paths, cfg)
    before = log.committed("test")
    lease = PartitionLease(paths.checkpoints, 1)
    assert lease.try_acquire()
    try:
        with pytest.raises(Exception, match="stop the stream first"):
            reset_group(log, paths.data_dir, "test", "earliest", NOW)
    finally:
        lease.release()
    assert log.committed("test") == before
    assert all(CheckpointStore(paths.checkpoints, "events", "test").read(p) for p in range(2))


def test_reset_to_latest_moves_the_checkpoints_with_the_offsets(log, store, paths, champion, cfg) -> None:
    run(log, store, paths, cfg)
    log.append(0, [session(i) for i in range(30)])  # 30 records the group will skip, as asked
    done = reset_group(log, paths.data_dir, "test", "latest", NOW)
    assert done.checkpoints_moved == (0, 1)
    ends = {p: log.end_offset(p) for p in range(2)}
    assert log.committed("test") == ends
    assert {p: off for p, (off, _) in states(paths, log).items()} == ends
    assert run(log, store, paths, cfg, "w1")["events"] == 0  # nothing left: lag 0, returns


def test_a_group_without_checkpoints_is_reset_as_before(log, paths, store) -> None:
    done = reset_group(log, paths.data_dir, "other", "latest", NOW)
    assert done.offsets == {p: log.end_offset(p) for p in range(2)} and not done.checkpoints_moved


def test_after_the_offsets_file_is_moved_aside_the_summary_counts_only_this_runs_work(
    log, store, paths, data_dir, cfg
) -> None:
    """The documented recovery of a corrupt offsets file (move it aside, restart): the workers
    resume at their checkpoints, at the log end, yet the summary counted the whole log as this
    run's events, suggesting a full replay (and duplicates). It counts from the checkpoints."""
    stream = supervised_until_caught_up(data_dir)

    first = stream()
    total = sum(log.end_offset(p) for p in range(2))
    assert first["events"] == total
    (offsets,) = (data_dir / "log" / "events").rglob("test.json")
    offsets.rename(offsets.with_name("test.json.corrupt"))  # the error message's remedy
    log.append(0, [session(i) for i in range(7)])
    again = stream()
    assert again["stopped"] == "caught up" and again["events"] == 7


def test_lag_says_when_the_checkpoints_resume_elsewhere_than_the_committed_offsets(
    log, store, paths, champion, cfg, capsys
) -> None:
    """Repro: the group's offsets file deleted: `churn lag` showed `-` and the whole
    partition as lag, though the stream resumes from its checkpoints and only those records
    after them are work. The note says where the checkpoints resume."""
    run(log, store, paths, cfg)
    ends = {p: log.end_offset(p) for p in range(2)}
    code, _, err = lag(capsys, paths.data_dir)
    assert code == 0 and err == ""  # agreed: nothing to say
    for f in (log.path / "groups").glob("test*"):
        f.unlink()
    code, out, err = lag(capsys, paths.data_dir)
    err = err.replace("\n", "")
    assert code == 0 and "resume elsewhere than the committed offsets" in err
    assert f"partition 0 at {ends[0]:,} (committed: none)" in err and f"partition 1 at {ends[1]:,}" in err
    run(log, store, paths, cfg, "w1")  # the stream commits its checkpoints' offsets
    assert log.committed("test") == ends and lag(capsys, paths.data_dir)[2] == ""
