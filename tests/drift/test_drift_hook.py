"""Drift monitoring inside the stream worker (pipeline/stream/drift_hook.py): the drift
leader observes every active user at each event-time midnight, checks off the batch
loop, follows the champion's reference, records whether a retrain was requested."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.drift.check import DriftResult
from pipeline.drift.config import DriftConfig
from pipeline.drift.loop import RETRAIN_REQUESTED, RETRAIN_SKIPPED
from pipeline.features.columns import decode_columns
from pipeline.features.registry import FEATURE_NAMES
from pipeline.labels import build_snapshots
from pipeline.log import open_log
from pipeline.store import Store
from pipeline.stream.config import StreamConfig, StreamPaths
from pipeline.stream.drift_hook import REFERENCE_FILE, DriftHook, read_reference, write_reference
from pipeline.stream.worker import Worker
from pipeline.testing.stream import publish_tiny_champion, simulated_log
from tests.drift.helpers import fake_check

DAY_US = 86_400_000_000
T_CUT = 1_767_225_600_000_000 + 12 * DAY_US + DAY_US // 2  # 2026-01-13 12:00 UTC, in the simulated history


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("hooklog")
    simulated_log(root / "log", users=500, days=16, partitions=2, seed=3).close()
    return root


@pytest.fixture
def env(tmp_path, template):
    shutil.copytree(template / "log", tmp_path / "data" / "log")
    data = tmp_path / "data"
    log = open_log(data / "log", "events", create=False)
    store = Store(f"sqlite:///{tmp_path / 'churn.db'}")
    paths = StreamPaths(data, "test")
    yield data, log, store, paths
    store.close()
    log.close()


CFG = StreamConfig(group="test", batch_size=200, max_wait_s=0.0, checkpoint_interval_s=3600.0,
                   flush_interval_s=0.05, metrics_interval_s=3600.0)  # fmt: skip
DRIFT = DriftConfig(executor="inline", warmup_days=5, min_rows=20, window_rows=5_000, every_rows=1_000_000,
                    full_report_every=0, retrain_policy="immediate")  # fmt: skip


def champion(paths, version="1", reference=None, **kw):
    ref = publish_tiny_champion(paths, version=version, **kw)
    write_reference(Path(ref.path), reference)
    return ref


def far_reference(n=300, value=100.0):
    return pd.DataFrame(np.full((n, len(FEATURE_NAMES)), value), columns=list(FEATURE_NAMES))


def worker(data, log, store, paths, parts=(0, 1), drift=DRIFT, events=None, cfg=CFG):
    w = Worker("w0", log, store, paths, cfg, partitions=list(parts))
    w.drift = DriftHook("w0", drift, store, data, w.clock, check=fake_check,
                        requester=lambda req: events.append(req) if events is not None else None)  # fmt: skip
    return w


SEEN: list = []


def capturing_check(snap, *args, **kw):
    SEEN.append(snap)
    return fake_check(snap, *args, **kw)


def test_leader_checks_active_users_at_each_midnight_equal_to_training_cutoffs(env):
    data, log, store, paths = env
    champion(paths, reference=far_reference())
    w = worker(data, log, store, paths)
    w.drift.monitor_kwargs["check"] = capturing_check
    SEEN.clear()
    w.run(until_caught_up=True)
    outs = [o for o in w.drift.outcomes if hasattr(o.result, "features")]
    assert len(outs) >= 5 and len(SEEN) == len(outs)  # one per day after the warm-up
    cutoffs = [int(snap.at_us[0]) for snap in SEEN]
    assert all(c % DAY_US == 0 for c in cutoffs) and cutoffs == sorted(set(cutoffs))
    # the same vectors training reads at those cutoffs (its replay splits at the cutoff too)
    table = build_snapshots(log, horizon_days=1, cutoffs_us=cutoffs, lateness=timedelta(hours=24)).table
    compared = 0
    for snap, cut in zip(SEEN, cutoffs, strict=True):
        want = table[table.cutoff == pd.Timestamp(cut, unit="us", tz="UTC")].set_index("user_id")
        if want.empty:  # training keeps a cutoff only if its (1-day) label horizon fits in the log
            continue
        compared += 1
        got = pd.DataFrame(snap.values, index=snap.users, columns=list(snap.columns))
        assert sorted(got.index) == sorted(want.index) and len(got) > 50
        np.testing.assert_allclose(got.loc[want.index, list(FEATURE_NAMES)].to_numpy(),
                                   want[list(FEATURE_NAMES)].to_numpy(np.float64), rtol=1e-9, atol=1e-9)  # fmt: skip
    assert compared >= 4
    runs = store.drift_runs()
    assert len(runs) == len(outs) and set(runs.source) == {"w0"} and set(runs.model_version) == {"1"}


def test_a_population_bigger_than_the_window_is_sampled_uniformly_per_partition(env):
    """The window holds window_rows users: only that many are read and scored per day,
    an even share per owned partition, each a subset of that midnight's active users."""
    data, log, store, paths = env
    champion(paths, reference=far_reference())
    w = worker(data, log, store, paths, drift=DRIFT.replace(window_rows=60, min_rows=20))
    w.drift.monitor_kwargs["check"] = capturing_check
    SEEN.clear()
    w.run(until_caught_up=True)
    assert len(SEEN) >= 5
    full = build_snapshots(log, horizon_days=1, cutoffs_us=[int(s.at_us[0]) for s in SEEN],
                           lateness=timedelta(hours=24)).table  # fmt: skip
    for snap in SEEN:
        assert len(snap) == 60 and len(set(snap.users)) == 60  # 30 from each of the 2 partitions
        active = full[full.cutoff == pd.Timestamp(int(snap.at_us[0]), unit="us", tz="UTC")]
        if len(active):
            assert set(snap.users) <= set(active.user_id)
    assert len({tuple(sorted(s.users)) for s in SEEN}) > 1  # a fresh sample each day


def test_only_the_owner_of_the_leader_partition_monitors(env):
    data, log, store, paths = env
    champion(paths, reference=far_reference())
    w = worker(data, log, store, paths, parts=(1,))
    w.run(until_caught_up=True)
    assert w.drift.monitor is None and w.drift.outcomes == [] and store.drift_runs().empty


def test_warmup_holds_checks(env):
    data, log, store, paths = env
    champion(paths, reference=far_reference())
    w = worker(data, log, store, paths, drift=DRIFT.replace(warmup_days=100))
    w.run(until_caught_up=True)
    assert w.drift.outcomes == [] and store.drift_runs().empty  # 16 days of events < 100 days of warm-up


def test_scored_mode_observes_the_scored_users(env):
    data, log, store, paths = env
    champion(paths, reference=far_reference())
    w = worker(data, log, store, paths, drift=DRIFT.replace(observe="scored", per_event_day=False, every_rows=1_000))
    w.run(until_caught_up=True)
    outs = [o for o in w.drift.outcomes if hasattr(o.result, "features")]
    assert len(outs) >= 2 and all(o.result.rows <= 5_000 for o in outs)


def test_critical_drift_requests_one_retrain_and_the_run_records_it(env):
    data, log, store, paths = env
    champion(paths, reference=far_reference())
    events: list = []
    w = worker(data, log, store, paths, events=events)
    w.run(until_caught_up=True)
    crit = [o for o in w.drift.outcomes if o.alert.level.value == "Critical"]
    assert len(crit) >= 2 and sum(o.retrain_requested for o in crit) == 1  # the cooldown (24 h)
    assert len(events) == 1 and events[0].model_version == "1"
    assert events[0].payload["source"] == "w0" and events[0].because
    reasons = store.drift_runs().reasons.tolist()
    assert sum(any(x.startswith(RETRAIN_REQUESTED) for x in r) for r in reasons) == 1
    assert sum(any(x.startswith(RETRAIN_SKIPPED) for x in r) for r in reasons) == len(crit) - 1


def test_a_new_champion_switches_the_reference_and_empties_the_window(env):
    data, log, store, paths = env
    champion(paths, reference=far_reference())
    w = worker(data, log, store, paths)
    w.sync_assignment()
    w.check_model()
    for _ in range(14):  # ~5.6k of ~8k events: past the warm-up, some checks of v1
        w.step()
    assert w.drift.version == "1" and any(o.result.model_version == "1" for o in w.drift.outcomes)
    near = far_reference(value=1.0)
    champion(paths, version="2", reference=near, boost=1.0)
    w._next_model = 0.0
    w.check_model()
    assert w.model.version == "2"
    w.run(until_caught_up=True)
    assert w.drift.version is None  # closed at shutdown, after switching
    versions = [o.result.model_version for o in w.drift.outcomes]
    assert versions[-1] == "2"
    refs = [o.result.reference_rows for o in w.drift.outcomes if o.result.model_version == "2"]
    assert refs and set(refs) == {len(near)}


def test_a_champion_without_reference_is_scored_but_not_monitored(env, caplog):
    data, log, store, paths = env
    ref = publish_tiny_champion(paths, version="1")
    assert read_reference(Path(ref.path)) is None
    w = worker(data, log, store, paths)
    with caplog.at_level(logging.WARNING):
        summary = w.run(until_caught_up=True)
    assert summary["events"] > 0 and w.drift.outcomes == []
    msgs = [r.getMessage() for r in caplog.records if REFERENCE_FILE in r.getMessage()]
    assert len(msgs) == 1 and "without drift checks" in msgs[0]
    skipped = store.drift_runs(status=None)  # stored once, with the reason, for the Drift page
    assert skipped.status.tolist() == ["skipped"] and "without a reference sample" in skipped.status_reason.iloc[0]
    assert store.drift_runs().empty


GATE = threading.Event()


def gated_check(*args, **kw):
    GATE.wait(30)  # in flight until the test lets it finish
    return fake_check(*args, **kw)


@pytest.mark.parametrize("finish_s", [30.0, 0.0])
def test_a_run_that_ends_on_its_own_finishes_the_check_in_flight_else_stores_it_as_skipped(env, finish_s):
    """`--until-caught-up` ended the run 1 s after a check came due: the check was ended
    unseen and `churn drift` said "no drift checks yet". Now the run waits for it (up to
    drift_finish_s); a check ended anyway is a skipped run that says why. Given the time,
    the days the replay passed unread get one last check too: the run ends caught up, so
    the newest midnight is read as it stops."""
    data, log, store, paths = env
    champion(paths, reference=far_reference())
    GATE.clear()
    w = worker(data, log, store, paths, drift=DRIFT.replace(executor="thread"),
               cfg=dataclasses.replace(CFG, drift_finish_s=finish_s))  # fmt: skip
    w.drift.monitor_kwargs["check"] = gated_check
    close = w.drift.close

    def closing(**kw):  # the first check is still in flight here (it waits on the gate)
        assert w.drift.monitor.running
        if kw["wait"]:
            threading.Timer(0.5, GATE.set).start()
        return close(**kw)

    w.drift.close = closing
    SEEN.clear()
    w.drift.monitor_kwargs["check"] = gated_capture
    try:
        w.run(until_caught_up=True)
    finally:
        GATE.set()
    runs = store.drift_runs(status=None).sort_values("time")
    if finish_s:
        assert runs.status.tolist() == ["checked", "checked"]
        assert all(isinstance(o.result, DriftResult) for o in w.drift.outcomes[-2:])
        first, last = (int(s.at_us[0]) for s in SEEN)
        assert last == -(-newest_event_us(log) // DAY_US) * DAY_US and last - first >= 5 * DAY_US  # the newest midnight
    else:
        assert len(runs) == 1  # no time given: the check in flight is ended, nothing more read
        assert runs.status.tolist() == ["skipped"]
        assert runs.status_reason.iloc[0].startswith("the stream stopped while this check ran: ended without a verdict")


def newest_event_us(log) -> int:
    """The newest event time in the whole log (epoch microseconds)."""
    return max(int(decode_columns(log.fetch_values(p, log.start_offset(p), 10**7)[0]).columns.ts.max())
               for p in range(log.num_partitions))  # fmt: skip


def gated_capture(snap, *args, **kw):
    SEEN.append(snap)
    return gated_check(snap, *args, **kw)


def test_a_replay_that_outran_its_checks_checks_its_newest_state_once_caught_up(env, caplog):
    """The quick demo's stream replayed 80 days while its first check ran, then caught up
    with a log that stopped growing: no midnight passed again, so its one check (of an early
    day) stayed the last word. Caught up, quiet and with the monitor idle, the hook now reads
    every owned partition at the midnight after its newest event (what training's snapshot
    there holds: no event follows), and that window is checked."""
    data, log, store, paths = env
    champion(paths, reference=far_reference())
    GATE.clear()
    w = worker(data, log, store, paths, drift=DRIFT.replace(executor="thread"))
    w.drift.monitor_kwargs["check"] = gated_capture
    SEEN.clear()

    def finish():
        if w.caught_up():
            GATE.set()  # the first check was in flight for the whole replay
        done = len(SEEN) >= 2 and "caught up" in caplog.text and len(w.drift.outcomes) == len(SEEN)
        if done:  # the partitions' states, as the run ends (it releases them)
            states.update({p: part.engine.state(p) for p, part in w.parts.items()})
        return done

    states = {}

    caplog.set_level(logging.INFO, logger="pipeline.stream.drift_hook")
    try:
        w.run(finish=finish, max_seconds=60)
    finally:
        GATE.set()
    last = SEEN[-1]
    assert all(int(s.at_us[0]) % DAY_US == 0 for s in SEEN)  # midnights only, the last one too
    assert set(states) == {0, 1}
    midnight = -(-max(st.watermark_us for st in states.values()) // DAY_US) * DAY_US  # one cutoff for all
    after = dict.fromkeys(states, midnight)
    assert set(np.unique(last.at_us).tolist()) == {midnight}  # the first midnight at or after the newest event
    assert midnight // DAY_US - int(SEEN[-2].at_us[0]) // DAY_US >= 5  # days the replay passed unread
    # every active user of each partition, with the vector a read at that midnight gives
    users = list(last.users)
    assert len(users) == len(set(users))
    for p, state in states.items():
        active = [state.user_ids[i] for i in state.active_slots().tolist()]
        assert len(active) > 50 and set(active) <= set(users)
        rows = [users.index(u) for u in active]
        assert set(last.at_us[rows].tolist()) == {after[p]}
        np.testing.assert_array_equal(np.asarray(last.values)[rows], state.read(after[p], active).values)
    assert len(users) == sum(len(s.active_slots()) for s in states.values())
    assert "caught up with a log that stopped growing" in caplog.text
    assert len(store.drift_runs()) == len(SEEN) <= 3


def test_a_log_that_only_paused_gets_its_midnight_checked_again_when_it_resumes(env, tmp_path, caplog):
    """The catch-up reads ahead of a midnight after 5 s without records. If the log had only
    paused (a producer outage, a daily import cut mid-afternoon), the rest of that day comes
    later: the window read ahead saw part of it. When that midnight really passes, its own
    window is read and checked again (before, the cadence had already "checked" that day)."""
    data, log, store, paths = env
    champion(paths, reference=far_reference())
    cut_us = T_CUT
    rest: dict[int, list[bytes]] = {}
    paused = open_log(tmp_path / "paused" / "log", "events", num_partitions=log.num_partitions)
    for p in range(log.num_partitions):
        values = log.fetch_values(p, log.start_offset(p), 10**7)[0]
        ts = decode_columns(values).columns.ts
        k = int(np.searchsorted(ts, cut_us, side="right")) if bool((np.diff(ts) >= 0).all()) else None
        assert k is not None, "the simulated log is in time order per partition"
        paused.append(p, values[:k])
        rest[p] = values[k:]
    GATE.clear()
    w = worker(data, paused, store, paths, drift=DRIFT.replace(executor="thread"))
    w.drift.monitor_kwargs["check"] = gated_capture
    SEEN.clear()
    resumed = []

    def finish():
        if w.caught_up():
            GATE.set()
        ahead = [s for s in SEEN if int(s.at_us[0]) == -(-cut_us // DAY_US) * DAY_US]
        if len(ahead) == 1 and len(w.drift.outcomes) == len(SEEN) and not resumed:
            for p, values in rest.items():  # the log resumes: the rest of that day, and later days
                paused.append(p, values)
            resumed.append(True)
        return len(ahead) >= 2 and len(w.drift.outcomes) == len(SEEN)

    caplog.set_level(logging.INFO, logger="pipeline.stream.drift_hook")
    try:
        w.run(finish=finish, max_seconds=90)
    finally:
        GATE.set()
        paused.close()
    midnight = -(-cut_us // DAY_US) * DAY_US
    ahead, own = [s for s in SEEN if int(s.at_us[0]) == midnight]
    assert resumed and "checked again" in caplog.text
    # the same midnight, the second time with the whole day: more activity in the day's features
    col = list(own.columns).index("sessions_7d")
    assert np.asarray(own.values)[:, col].sum() > np.asarray(ahead.values)[:, col].sum()
    runs = store.drift_runs().sort_values("time")
    assert (runs.window_end == pd.Timestamp(midnight, unit="us", tz="UTC")).sum() == 2


def test_bad_drift_settings_are_one_clear_line():
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match=r"observe='daily' \('day_snapshot' or 'scored'\)"):
        DriftConfig(observe="daily")
    with pytest.raises(ConfigError, match=r"warmup_days=-1 \(an int >= 0\)"):
        DriftConfig(warmup_days=-1)


ORPHAN = """
import os, signal, time
import pandas as pd
from pipeline.drift.config import DriftConfig
from pipeline.drift.monitor import DriftMonitor

def started():
    m = DriftMonitor(pd.DataFrame({"a": [0.0] * 600}), "1", columns=("a",), config=DriftConfig(executor="process"))
    m.warm()
    while not m._executor._processes:
        time.sleep(0.05)
    return m, next(iter(m._executor._processes.values()))

def running(pid):  # the OS's view: Process.is_alive() says True when the pool's own thread reaped it first
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False

m, proc = started()
m.close()  # without waiting for a running check: its process is ended
print(running(proc.pid), flush=True)
m, proc = started()
print(proc.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # the worker is killed: no clean shutdown; the check process follows
"""


@pytest.mark.slow  # ~10 s: two check processes start
def test_the_check_process_never_outlives_its_worker():
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", ORPHAN], cwd=root, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(root)))  # fmt: skip
    assert out.returncode == -signal.SIGKILL, (out.returncode, out.stderr[-2000:])  # really killed
    alive_after_close, pid = out.stdout.split()
    assert alive_after_close == "False"
    end = time.monotonic() + 15
    while time.monotonic() < end:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(int(pid), 9)
    raise AssertionError(f"check process {pid} outlived its killed parent")


def test_serve_takes_the_retrain_parameters_and_refuses_bad_ones(capsys):
    from flows.serve import deployments, main

    d = next(d for d in deployments(data_dir="/tmp/x", train_params={"horizon_days": 7}) if d.name == "weekly")
    assert d.parameters == {"horizon_days": 7, "data_dir": "/tmp/x"}
    assert d.triggers and next(iter(d.triggers[0].expect)) == "churn.drift.detected"
    with pytest.raises(SystemExit):
        main(["--train-params", "[1]"])
    assert "--train-params '[1]': not a JSON object" in capsys.readouterr().err


def test_first_activity_skips_signups_by_their_bytes_and_decodes_everything_else():
    """The warm-up gate's start: the first non-signup record's time. Signups as the encoder
    writes them are skipped undecoded (over several fetch pages); a signup with another key
    order is still decoded and still a signup; a malformed line is no activity."""
    from datetime import UTC, datetime

    from pipeline.events import Session, Signup, encode
    from pipeline.log import MemoryLog
    from pipeline.stream.drift_hook import _first_activity_us

    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    signups = [encode(Signup(event_id=f"s{i}", user_id=f"u{i}", ts=t0, schema_version=1, plan="basic"))
               for i in range(12_000)]  # fmt: skip
    reordered = b'{"event_id":"x","type":"signup","user_id":"ux","ts":"2025-01-01T00:00:00Z","schema_version":1,"plan":"basic"}'
    session = encode(Session(event_id="a", user_id="u1", ts=datetime(2026, 3, 1, 12, tzinfo=UTC), schema_version=1,
                             watch_minutes=3.0, device="tv"))  # fmt: skip
    log = MemoryLog(num_partitions=2)
    log.append(0, [*signups, reordered, b'{"type":"session", broken', session])
    log.append(1, signups[:10])
    got = _first_activity_us(log, 0)
    assert got == int(datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp() * 1_000_000)
    assert _first_activity_us(log, 1) is None  # signups only: no activity yet
    assert _first_activity_us(MemoryLog(num_partitions=1), 0) is None
