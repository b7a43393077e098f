"""Issue 16 items 1 and 5: future-dated events and duplicate event ids in the stream."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import msgspec
import numpy as np
import pytest

from pipeline.clock import FakeClock
from pipeline.features.columns import decode_columns
from pipeline.features.engine import FeatureEngine
from pipeline.features.state import FeatureState
from pipeline.log import dead_letter_log, parse_dead_letter
from pipeline.stream.admission import Admission, DedupWindow
from pipeline.stream.checkpoint import CheckpointStore
from pipeline.stream.worker import Worker

from .helpers import crash, scores, states

NOW = datetime(2026, 2, 1, tzinfo=UTC)  # the history covers 2026-01-01 .. 2026-01-30


def _events(log, p: int) -> list[dict]:
    return [json.loads(r.value) for r in log.iter_records(p, 0)]


def _dead(log) -> list:
    dlq = dead_letter_log(log)
    try:
        return [parse_dead_letter(r.value) for p in range(dlq.num_partitions) for r in dlq.iter_records(p, 0)]
    finally:
        dlq.close()


def _session(user: str, eid: str, ts: datetime) -> bytes:
    return json.dumps({"type": "session", "event_id": eid, "user_id": user, "ts": ts.isoformat(),
                       "schema_version": 1, "watch_minutes": 12.0, "device": "tv"}).encode()  # fmt: skip


def _watermark(paths, log, p: int) -> datetime | None:
    ck = CheckpointStore(paths.checkpoints, log.name, paths.group).read(p)
    return FeatureState.restore(ck.state).watermark


# -- item 1 -------------------------------------------------------------------------------
def test_a_future_dated_event_is_dead_lettered_and_never_moves_the_watermark(log, store, paths, champion, cfg):
    user = _events(log, 0)[0]["user_id"]
    later = [_session(user, f"live-{i}", NOW - timedelta(hours=12) + timedelta(minutes=i)) for i in range(50)]
    end = log.end_offset(0)
    log.append(0, [_session(user, "poison", datetime(2099, 6, 1, tzinfo=UTC)), *later])
    summary = Worker("w0", log, store, paths, cfg, partitions=[0, 1], clock=FakeClock(NOW)).run(until_caught_up=True)
    dead = _dead(log)
    assert [(d.source_offset, d.reason.split(":")[0]) for d in dead] == [(end, "future event")]
    assert summary["future"] == 1 and summary["dead_letters"] == 1  # no "late" flood after it
    wm = _watermark(paths, log, 0)
    assert wm is not None and wm < NOW  # the watermark follows the real events only
    row = scores(store).set_index("user_id").loc[user]
    assert row["features_time"] < NOW  # scored as of the live events, not as of 2099


def test_the_skew_is_configurable():
    clock = FakeClock(NOW)
    cols = decode_columns([_session("u1", f"e{h}", NOW + timedelta(hours=h)) for h in (1, 5, 30)]).columns
    keep, rejected = Admission(clock, max_skew=timedelta(hours=2))(0, cols)
    assert keep.tolist() == [0] and [r for r, _ in rejected] == [1, 2]
    keep, rejected = Admission(clock)(0, cols)  # default: one day
    assert keep.tolist() == [0, 1] and [r for r, _ in rejected] == [2]
    clock.advance(86_400)
    keep, _ = Admission(clock)(0, cols)
    assert keep.tolist() == [0, 1, 2]


# -- item 5 -------------------------------------------------------------------------------
def test_the_same_event_appended_twice_is_applied_once_and_counted(log, store, paths, champion, cfg, tmp_path,
                                                                    caplog):
    import shutil

    # a clean copy of the log, replayed alone, is the reference
    ref_dir = tmp_path / "ref"
    shutil.copytree(paths.data_dir, ref_dir)
    from pipeline.log import open_log
    from pipeline.stream.config import StreamPaths
    from pipeline.testing.stream import publish_tiny_champion

    ref_paths = StreamPaths(ref_dir, paths.group)
    publish_tiny_champion(ref_paths, version="1")
    ref_log = open_log(ref_dir / "log", "events", create=False)
    try:
        Worker("r0", ref_log, store, ref_paths, cfg, partitions=[0, 1]).run(until_caught_up=True)
        ref = states(ref_paths, ref_log)
    finally:
        ref_log.close()
    # now the same records plus copies of the last 150 (a producer that re-sent a batch;
    # recent enough not to be late, so without dedup they would be applied twice)
    values = [r.value for r in log.iter_records(1, 0)]
    log.append(1, values[-150:])
    with caplog.at_level("WARNING", logger="pipeline.stream"):
        summary = Worker("w0", log, store, paths, cfg, partitions=[0, 1]).run(until_caught_up=True)
    got = states(paths, log)
    assert got[0] == ref[0]
    assert got[1][1] == ref[1][1]  # the same feature state, byte for byte
    assert got[1][0] == ref[1][0] + 150  # and the duplicates were consumed
    assert summary["duplicates"] == 150 and summary["dead_letters"] == 0
    assert any("dropped 150 duplicate event(s)" in r.getMessage() for r in caplog.records)


def test_dedup_window_survives_a_kill_and_decides_like_an_uninterrupted_run(log, store, paths, champion, cfg):
    values = [r.value for r in log.iter_records(0, 0)]
    log.append(0, values[-100:])  # copies of records on both sides of the checkpoint below
    cfg = cfg.replace(batch_size=100)
    w = Worker("w0", log, store, paths, cfg, partitions=[0])
    w.sync_assignment()
    w.check_model()
    while w.parts[0].position < len(values) - 50:
        w.step()
    w.checkpoint(w.parts[0])
    w.writer.flush()
    before = w.admission.duplicates
    crash(w)  # killed after its checkpoint, before the duplicates
    w2 = Worker("w1", log, store, paths, cfg, partitions=[0])
    summary = w2.run(until_caught_up=True)
    assert before == 0 and summary["duplicates"] == 100  # the restored window knew the older half
    ck = CheckpointStore(paths.checkpoints, log.name, paths.group).read(0)
    assert ck.meta.next_offset == len(values) + 100 and len(DedupWindow.from_bytes(ck.dedup)) > 0


def test_dedup_decisions_do_not_depend_on_batching():
    rng = np.random.default_rng(3)
    ids = [f"e{i}" for i in rng.integers(0, 400, 3_000).tolist()]  # many repeats, some far apart
    one = DedupWindow(100)
    by_one = [i for i, e in enumerate(ids) if one.admit([e])]
    for cut in (7, 100, 999):
        w = DedupWindow(100)
        got = []
        for lo in range(0, len(ids), cut):
            got += [lo + d for d in w.admit(ids[lo : lo + cut])]
        assert got == by_one, cut
        assert DedupWindow.from_bytes(w.to_bytes()) == w  # what the checkpoint keeps
    assert 100 <= len(one) <= 200  # bounded


def test_window_bytes_hold_each_generation_in_admission_order_across_rotations():
    """``to_bytes`` joins the encodings kept as ids are admitted: taken between batches (as
    checkpoints are), it holds exactly the window's ids, each generation in the order
    admitted (a plain-list model of the rule), and restores to the same window."""
    from pipeline.stream.admission import _WindowDoc

    rng = np.random.default_rng(5)
    w = DedupWindow(50)
    cur: list[str] = []
    prev: list[str] = []
    for k in range(80):
        ids = [f"e{i}" for i in rng.integers(0, 3_000, int(rng.integers(1, 40))).tolist()]
        w.admit(ids)
        for e in ids:  # the model: a duplicate is skipped; a full current generation rotates
            if e in cur or e in prev:
                continue
            if len(cur) == 50:
                prev, cur = cur, []
            cur.append(e)
        doc = msgspec.msgpack.decode(w.to_bytes(), type=_WindowDoc)
        assert (doc.size, doc.current, doc.previous) == (50, cur, prev), k
        assert DedupWindow.from_bytes(w.to_bytes()) == w


def test_window_built_from_bytes_or_sets_is_encoded_afresh_then_kept_up():
    w = DedupWindow(4, {"a", "b"}, {"x", "y", "z", "q"})
    w.admit(["c"])
    back = DedupWindow.from_bytes(w.to_bytes())
    assert back == w
    back.admit(["d", "e", "f"])  # fills and rotates: {"a","b","c","d"} becomes the older one
    again = DedupWindow.from_bytes(back.to_bytes())
    assert again == back and again.previous == {"a", "b", "c", "d"} and again.current == {"e", "f"}


def test_msgpack_array_heads_are_msgspecs() -> None:
    from pipeline.stream.admission import _array_head

    for n in (0, 1, 15, 16, 17, 65_535, 65_536, 70_000):
        raw = msgspec.msgpack.encode([None] * n)
        assert raw[: len(_array_head(n))] == _array_head(n) and len(raw) == len(_array_head(n)) + n, n


def test_window_bytes_round_trip_and_garbage_is_an_error():
    w = DedupWindow(3)
    w.admit(["a", "b", "c", "d"])
    assert DedupWindow.from_bytes(w.to_bytes()) == w and "a" in w and "d" in w
    with pytest.raises(Exception, match="dedup window is unreadable"):
        DedupWindow.from_bytes(msgspec.msgpack.encode({"x": 1}))


def test_engine_without_admission_is_unchanged(log):
    values = [r.value for r in log.iter_records(0, 0)][:500]
    a, b = FeatureEngine(log.num_partitions), FeatureEngine(log.num_partitions)
    a.process(0, values)
    b.process(0, values, admit=Admission(FakeClock(NOW)))
    assert a.snapshot(0) == b.snapshot(0)
