"""A scoring worker in-process: scores, offsets, dead letters, champion switch, handover, idle."""

from __future__ import annotations

import logging
import random
import shutil
import threading
import time

import pandas as pd
import pytest

from pipeline.errors import ModelMismatchError
from pipeline.features.registry import FEATURE_SET_VERSION
from pipeline.log import dead_letter_log, open_log, parse_dead_letter
from pipeline.store import Store
from pipeline.stream.config import StreamPaths
from pipeline.stream.worker import Worker
from pipeline.testing.stream import publish_tiny_champion

from .helpers import append_bad_events, crash, history, scores, states


def _users(log) -> set[str]:
    import json

    return {
        json.loads(r.value)["user_id"]
        for p in range(log.num_partitions)
        for r in log.iter_records(p, 0)
    }


def test_scores_every_user_commits_offsets_and_records_metrics(
    log, store, paths, champion, cfg
) -> None:
    cfg = cfg.replace(alert_threshold=0.3)  # the tiny champion's active users stay under 0.5
    summary = Worker("w0", log, store, paths, cfg, partitions=[0, 1]).run(until_caught_up=True)
    ends = {p: log.end_offset(p) for p in range(2)}
    assert summary["events"] == sum(ends.values()) and summary["model_version"] == "1"
    df = scores(store)
    assert set(df["user_id"]) == _users(log)  # every touched user scored
    assert (df["model_version"] == "1").all() and df["risk"].between(0, 1).all()
    hot = (df["risk"] >= cfg.alert_threshold) & df["active"]
    assert hot.any() and df.loc[hot, "reasons"].map(len).eq(3).all()  # top 3 for high risk only
    assert df.loc[~hot, "reasons"].isna().all()
    assert log.committed("test") == ends  # `churn lag --group test` shows lag 0
    assert {p: off for p, (off, _) in states(paths, log).items()} == ends
    m = store.metrics_since()
    assert set(m["partition"]) == {0, 1} and m["events"].sum() == sum(ends.values())
    assert (
        (m["lag"] == 0).all() and set(m["status"]) == {"OK"} and (m["model_version"] == "1").all()
    )
    assert m["batch_p99_ms"].notna().all() and m["dead_letters"].sum() == 0


def _cancelled(log) -> set[str]:
    """Users whose latest cancel is at or after their latest signup (a plain loop)."""
    import json

    last: dict[str, dict[str, str]] = {}
    for p in range(log.num_partitions):
        for r in log.iter_records(p, 0):
            e = json.loads(r.value)
            if e["type"] in ("signup", "cancel"):
                seen = last.setdefault(e["user_id"], {})
                seen[e["type"]] = max(seen.get(e["type"], ""), e["ts"])
    return {u: s for u, s in last.items() if s.get("cancel", "") >= s.get("signup", "~")}.keys()


def test_cancelled_users_keep_an_inactive_row_and_are_never_at_risk(
    log, store, paths, champion, cfg
) -> None:
    cfg = cfg.replace(alert_threshold=0.3)
    Worker("w0", log, store, paths, cfg, partitions=[0, 1]).run(until_caught_up=True)
    df = scores(store).set_index("user_id")
    gone = set(_cancelled(log))
    assert gone and set(df.index[~df["active"]]) == gone  # voluntary and involuntary alike
    inactive = df.loc[sorted(gone)]
    assert inactive["plan"].isna().all() and (inactive["monthly_revenue"] == 0).all()
    assert (inactive["risk"] >= cfg.alert_threshold).any()  # the model alone would flag them
    assert inactive["reasons"].isna().all()  # not "at risk": no reasons computed
    at_risk = store.current_scores(top_k=None)
    assert gone.isdisjoint(at_risk["user_id"]) and len(at_risk) == len(df) - len(gone)
    summary = store.score_summary(cfg.alert_threshold)
    assert summary.churned_users == len(gone) and summary.users == len(df) - len(gone)
    assert summary.high_risk_users == int((at_risk["risk"] >= cfg.alert_threshold).sum())


def test_bad_events_go_to_dead_letters_once_even_after_a_crash(
    data_dir, log, store, paths, champion, cfg
) -> None:
    bad = append_bad_events(log, 0)
    first_bad = log.end_offset(0) - len(bad)
    good = open_log(data_dir / "log", "events").append(
        0, [b'{"not": "an event"}']
    )  # one more, via another handle
    assert good[0] == log.end_offset(0) - 1
    w = Worker("w0", log, store, paths, cfg.replace(batch_size=10_000), partitions=[0, 1])
    w.sync_assignment()
    w.check_model()
    w.step()  # everything in one batch each; dead letters sent, no checkpoint yet
    w.writer.flush()
    crash(w)  # lost: the batch's checkpoint; kept: the dead letters already appended
    Worker("w0", log, store, paths, cfg, partitions=[0, 1]).run(until_caught_up=True)
    dlq = dead_letter_log(log)
    letters = [parse_dead_letter(r.value) for r in dlq.iter_records(0, 0)]
    assert [d.source_offset for d in letters] == [
        first_bad,
        first_bad + 1,
        first_bad + 2,
        first_bad + 3,
    ]
    assert {d.source_partition for d in letters} == {0} and all(d.reason for d in letters)
    assert letters[2].value_encoding == "base64" and letters[2].original() == bad[2]
    assert "unknown event type" in letters[1].reason
    assert store.metrics_since()["dead_letters"].sum() == 4


def test_the_dead_letter_log_the_worker_opened_is_closed_when_it_stops(data_dir, log, store, paths, champion,
                                                                       cfg) -> None:  # fmt: skip
    """Each in-process worker left its <topic>.dlq handle open (file descriptors; on Kafka a
    consumer that kept reconnecting after the broker was gone, seen in make bench's log)."""
    import os

    bad = append_bad_events(log, 0)
    w = Worker("w0", log, store, paths, cfg, partitions=[0, 1])
    w.run(until_caught_up=True)
    dlq_dir = str(data_dir / "log" / "events.dlq")
    fds = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
           if os.path.exists(f"/proc/self/fd/{fd}")]  # fmt: skip
    assert not [f for f in fds if f.startswith(dlq_dir)]
    assert dead_letter_log(log).end_offset(0) == len(bad)  # written (and readable) before it was closed


@pytest.fixture(params=["sqlite", "postgresql"])
def crash_store(request, tmp_path):
    """The store of the crash test: SQLite, and PostgreSQL (a throw-away schema)."""
    import uuid

    from tests.store.conftest import drop_schema, pg_url

    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'churn.db'}")
        yield s
        s.close()
        return
    url = pg_url()
    if url is None:
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    schema = f"crash_{uuid.uuid4().hex[:10]}"
    s = Store(url, schema=schema)
    try:
        yield s
    finally:
        s.close()
        drop_schema(url, schema)


def test_killed_at_random_batches_ends_equal_to_an_uninterrupted_run(
    tmp_path, data_dir, log, crash_store, paths, cfg
) -> None:
    store = crash_store
    append_bad_events(log, 1)
    shutil.copytree(data_dir / "log", tmp_path / "ref" / "log")
    ref_log = open_log(tmp_path / "ref" / "log", "events")
    ref_paths = StreamPaths(tmp_path / "ref", "test")
    publish_tiny_champion(ref_paths)
    publish_tiny_champion(paths)
    small = cfg.replace(batch_size=400)
    with Store(f"sqlite:///{tmp_path / 'ref.db'}") as ref_store:
        Worker("ref", ref_log, ref_store, ref_paths, small, partitions=[0, 1]).run(
            until_caught_up=True
        )
        want_scores, want_history = scores(ref_store), history(ref_store)
    rng = random.Random(3)
    crashes = 0
    while True:
        w = Worker(
            "w0",
            log,
            store,
            paths,
            small.replace(checkpoint_interval_s=rng.choice([0.0, 0.01, 3600.0])),
            partitions=[0, 1],
        )
        w.sync_assignment()
        w.check_model()
        for _ in range(rng.randint(1, 4)):
            w.step()
        if w.caught_up() or crashes >= 12:
            w.run(until_caught_up=True)
            break
        crash(w)
        crashes += 1
    assert crashes >= 5
    pd.testing.assert_frame_equal(scores(store), want_scores)
    pd.testing.assert_frame_equal(history(store), want_history)  # issue 16.11
    assert states(paths, log) == states(ref_paths, ref_log)  # feature state byte for byte
    dead = [
        parse_dead_letter(r.value).source_offset for r in dead_letter_log(log).iter_records(1, 0)
    ]
    assert len(dead) == len(set(dead)) == 3  # dead letters not duplicated by the replays


def test_champion_switch_between_batches_records_versions(log, store, paths, champion, cfg) -> None:
    w = Worker("w0", log, store, paths, cfg.replace(batch_size=1_000), partitions=[0, 1])
    w.sync_assignment()
    w.check_model()
    w.step()
    w.step()
    switch_at = {p: part.position for p, part in w.parts.items()}
    publish_tiny_champion(paths, version="2", boost=2.0)
    w._next_model = 0.0  # don't wait for the next pointer check
    w.check_model()
    assert w.model.version == "2"
    w.run(until_caught_up=True)
    df = scores(store).set_index("user_id")
    import json

    last_offset: dict[str, tuple[int, int]] = {}
    for p in range(2):
        for r in log.iter_records(p, 0):
            last_offset[json.loads(r.value)["user_id"]] = (p, r.offset)
    want = {u: "2" if off >= switch_at[p] else "1" for u, (p, off) in last_offset.items()}
    assert df["model_version"].to_dict() == want
    assert set(want.values()) == {"1", "2"}
    assert set(store.metrics_since()["model_version"]) == {"2"}


def test_champion_with_another_feature_set_is_refused_naming_both(
    log, store, paths, cfg, caplog
) -> None:
    publish_tiny_champion(paths, version="5", feature_set_version="0000deadbeef0000")
    w = Worker("w0", log, store, paths, cfg, partitions=[0, 1])
    with pytest.raises(ModelMismatchError) as exc:
        w.check_model()
    msg = str(exc.value)
    assert (
        "v5" in msg
        and "0000deadbeef0000" in msg
        and FEATURE_SET_VERSION in msg
        and "churn train" in msg
    )
    w.shutdown()
    # while a good champion runs, a bad new one is refused and the old one kept
    publish_tiny_champion(paths, version="1")
    w = Worker("w1", log, store, paths, cfg, partitions=[0, 1])
    w.check_model()
    publish_tiny_champion(paths, version="6", feature_set_version="0000deadbeef0000")
    w._next_model = 0.0
    with caplog.at_level(logging.ERROR, logger="pipeline.stream"):
        w.check_model()
    assert (
        w.model.version == "1"
        and "0000deadbeef0000" in caplog.text
        and "Still scoring with v1" in caplog.text
    )
    w.shutdown()


def test_handover_between_workers_loses_nothing_and_repeats_nothing(
    tmp_path, data_dir, log, store, paths, champion, cfg
) -> None:
    shutil.copytree(data_dir / "log", tmp_path / "ref" / "log")
    ref_log = open_log(tmp_path / "ref" / "log", "events")
    ref_paths = StreamPaths(tmp_path / "ref", "test")
    publish_tiny_champion(ref_paths)
    small = cfg.replace(batch_size=300)
    with Store(f"sqlite:///{tmp_path / 'ref.db'}") as ref_store:
        Worker("ref", ref_log, ref_store, ref_paths, small, partitions=[0, 1]).run(
            until_caught_up=True
        )
        want = scores(ref_store)
    store.replace_assignments({"a": [0, 1]}, generation=1)
    a = Worker("a", log, store, paths, small)
    a.sync_assignment()
    a.check_model()
    for _ in range(3):
        a.step()
    store.replace_assignments({"a": [0], "b": [1]}, generation=2)  # scale up: 1 moves to b
    a.writer.beat()
    a.sync_assignment()  # a checkpoints partition 1 and drops its lease
    assert set(a.parts) == {0}
    b = Worker("b", log, store, paths, small)
    b.sync_assignment()
    b.check_model()
    assert b.parts[1].position == b.parts[1].committed > 0  # resumed at a's handover checkpoint
    for _ in range(2):
        a.step()
        b.step()
    store.replace_assignments({"a": [0, 1]}, generation=3)  # scale down: b leaves
    b.writer.beat()
    b.sync_assignment()
    assert b.removed
    b.shutdown()
    a.writer.beat()
    a.sync_assignment()
    a.run(until_caught_up=True)
    total = sum(log.end_offset(p) for p in range(2))
    assert a.metrics.events + b.metrics.events == total  # every record processed exactly once
    pd.testing.assert_frame_equal(scores(store), want)
    assert states(paths, log) == states(ref_paths, ref_log)


def test_partial_batch_waits_at_most_max_wait(log, store, paths, champion, cfg) -> None:
    w = Worker("w0", log, store, paths, cfg.replace(max_wait_s=0.3), partitions=[0, 1])
    w.run(until_caught_up=True)
    w = Worker("w0", log, store, paths, cfg.replace(max_wait_s=0.3), partitions=[0, 1])
    w.sync_assignment()
    w.check_model()
    line = next(log.iter_records(0, 0)).value
    log.append(0, [line] * 5)
    assert not w.step()  # 5 < batch size: wait for more
    time.sleep(0.35)
    assert w.step()  # waited max_wait: process what is there
    w.shutdown()


def test_idle_worker_does_not_spin(log, store, paths, champion, cfg) -> None:
    Worker("w0", log, store, paths, cfg, partitions=[0, 1]).run(until_caught_up=True)
    w = Worker("w0", log, store, paths, cfg.replace(max_wait_s=0.1), partitions=[0, 1])
    stop = threading.Event()
    cpu: dict[str, float] = {}

    def should_stop() -> bool:  # called by the loop, in the loop's thread
        if "start" not in cpu and w.model is not None and len(w.parts) == 2:
            cpu["start"], cpu["wall"] = time.thread_time(), time.monotonic()
        return stop.is_set()

    def run() -> None:
        w.run(should_stop)
        cpu["end"], cpu["wall"] = time.thread_time(), time.monotonic() - cpu["wall"]

    th = threading.Thread(target=run)
    th.start()
    stop.wait(2.0)
    stop.set()
    th.join()
    used = cpu["end"] - cpu["start"]  # this thread only: the batch loop, idle, plus the final drain
    assert cpu["wall"] > 1.0 and used < 0.05 * cpu["wall"], (
        f"idle loop used {used:.3f} s CPU in {cpu['wall']:.1f} s"
    )


def test_corrupt_checkpoint_stops_the_worker_with_the_file_and_the_recovery(
    log, store, paths, champion, cfg
) -> None:
    from pipeline.errors import CheckpointCorruptError

    Worker("w0", log, store, paths, cfg, partitions=[0, 1]).run(until_caught_up=True)
    path = paths.checkpoint(1)
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointCorruptError) as exc:
        Worker("w0", log, store, paths, cfg, partitions=[0, 1]).run(until_caught_up=True)
    assert str(path) in str(exc.value) and f"rm '{path}'" in str(exc.value)
    path.unlink()  # the documented recovery: partition 1 is rebuilt from the log
    before = scores(store)
    Worker("w0", log, store, paths, cfg, partitions=[0, 1]).run(until_caught_up=True)
    pd.testing.assert_frame_equal(scores(store), before)
