"""The monitor: cheap observe, cadence, background checks, results stored, reports kept,
critical drift -> one event per cooldown, clear skips instead of crashes."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import numpy as np
import pytest

from pipeline.autoscale.alerts import Level
from pipeline.clock import FakeClock
from pipeline.drift.check import DriftResult, Skipped, run_check
from pipeline.drift.config import DriftConfig
from pipeline.drift.monitor import DriftMonitor, Failed, make_executor
from pipeline.store import Store
from tests.drift.helpers import COLS, T0, fake_check, frame

CFG = DriftConfig(window_rows=1_000, min_rows=200, every_rows=500, every_minutes=60, per_event_day=False,
                  full_report_every=2, report_retention=2, executor="inline", retrain_cooldown_hours=24,
                  retrain_policy="immediate")  # the request mechanics; the episode policy: test_episodes.py


def monitor(tmp_path, clock, sent, store=None, check=fake_check, cfg=CFG, **kw):
    ref = frame(1_000, seed=1)
    return DriftMonitor(ref, "3", reference_risk=np.full(len(ref), 0.1), columns=COLS, config=cfg, store=store,
                        report_dir=tmp_path / "drift", clock=clock, requester=sent.append,
                        check=check, **kw)


def feed(m, df, risk=0.1, at=T0, users=None):
    m.observe(df.to_numpy(), np.full(len(df), risk), at, users=users)


def test_checks_on_cadence_store_results_and_emit_once_per_cooldown(tmp_path):
    clock, sent = FakeClock(T0), []
    store = Store(f"sqlite:///{tmp_path / 'churn.db'}", clock=clock)
    m = monitor(tmp_path, clock, sent, store=store)
    feed(m, frame(499, seed=2))
    assert m.step() == [] and not m.due()
    feed(m, frame(1, seed=3))
    assert m.due()
    assert m.step() == []  # submitted now (inline: already done), collected on the next step
    healthy = m.step()
    assert len(healthy) == 1 and healthy[0].alert.level is Level.HEALTHY and not healthy[0].retrain_requested
    for i in range(3):  # drifted data, three checks within the cooldown
        clock.advance(60)
        feed(m, frame(500, seed=10 + i, shift=2.0), risk=0.5, at=T0 + timedelta(hours=i))
        m.step()
        (out,) = m.step()
        assert out.alert.level is Level.CRITICAL and out.run_id is not None
        assert out.retrain_requested is (i == 0)
    assert len(sent) == 1 and sent[0].model_version == "3" and sent[0].because
    assert sent[0].payload["model_version"] == "3" and sent[0].payload["drifted_share"] == pytest.approx(0.6)
    clock.advance(24 * 3600)
    feed(m, frame(500, seed=20, shift=2.0), risk=0.5)
    m.step()
    assert m.step()[0].retrain_requested and len(sent) == 2  # cooldown over: one more request
    runs = store.drift_runs()
    assert list(runs.level) == ["Healthy", "Critical", "Critical", "Critical", "Critical"]
    assert len(store.drift_features(run_id=runs.run_id.iloc[-1])) == len(COLS)
    reports = tmp_path / "drift"
    assert len(list(reports.glob("*.html"))) == 2 and len(list(reports.glob("drift-*.json"))) == 5  # retention: 2 HTML
    assert runs.report_path.notna().sum() == 3  # checks 1, 3, 5 rendered the full report
    store.close()


def test_too_small_window_and_missing_columns_are_logged_skips(tmp_path, caplog):
    clock, sent = FakeClock(T0), []
    m = monitor(tmp_path, clock, sent)
    feed(m, frame(50, seed=2))
    with caplog.at_level(logging.WARNING):
        m.submit()
        (out,) = m.poll()
    assert isinstance(out.result, Skipped) and "window has 50 rows" in out.result.reason
    assert "drift check skipped: window has 50 rows" in caplog.text and out.alert.level is Level.HEALTHY
    scored = monitor(tmp_path, clock, sent, cfg=CFG.replace(observe="scored"))  # a window of scored rows fills
    feed(scored, frame(50, seed=2))
    scored.submit()
    assert scored.poll()[0].result.reason.endswith("wait for more scores or lower CHURN_DRIFT_MIN_ROWS")
    m.set_model(frame(1_000, seed=1, cols=("x", "y")), "4")  # a reference from another feature set
    feed(m, frame(300, seed=2))
    m.submit()
    (out,) = m.poll()
    assert isinstance(out.result, Skipped) and "has none of the window's columns" in out.result.reason
    m.set_model(frame(1_000, seed=1, cols=("a", "b", "zz")), "5")  # some columns missing
    feed(m, frame(300, seed=2))
    m.submit()
    (out,) = m.poll()
    assert isinstance(out.result, DriftResult) and [f.feature for f in out.result.features] == ["a", "b"]
    assert set(out.result.skipped_columns) == {"c", "d", "e", "zz"}
    assert sent == []


def test_window_dedupes_users_and_drops_inactive_rows(tmp_path):
    clock, sent = FakeClock(T0), []
    m = monitor(tmp_path, clock, sent)
    df = frame(400, seed=2)
    active = np.arange(400) % 4 != 0  # 100 inactive rows are not observed
    m.observe(df.to_numpy(), np.full(400, 0.1), T0, users=[f"u{i % 250}" for i in range(400)], active=active)
    assert len(m.window) == 300
    m.submit()
    (out,) = m.poll()
    assert out.result.rows == 225  # 250 users minus those whose only rows were inactive (u0, u4, ...: 25)


def slow_check(*args, gate: threading.Event, **kw):
    gate.wait(10)
    return fake_check(*args, **kw)


def gated_monitor(tmp_path, clock, sent, store, gate: threading.Event):
    """A monitor whose checks run in a thread and finish once ``gate`` is set."""
    from functools import partial

    return monitor(tmp_path, clock, sent, store=store, check=partial(slow_check, gate=gate),
                   executor=make_executor("thread"))


def checking(tmp_path, clock, sent, store, seed: int):
    """A gated monitor with a check of 500 fed rows in flight: (monitor, its gate)."""
    gate = threading.Event()
    m = gated_monitor(tmp_path, clock, sent, store, gate)
    feed(m, frame(500, seed=seed))
    m.step()
    assert m.running
    return m, gate


def test_a_running_check_does_not_block_observing(tmp_path):
    clock, sent, gate = FakeClock(T0), [], threading.Event()
    from functools import partial

    m = monitor(tmp_path, clock, sent, check=partial(slow_check, gate=gate), executor=make_executor("thread"))
    feed(m, frame(500, seed=2))
    assert m.step() == []  # submitted; the check waits on the gate
    for i in range(20):  # the stream keeps going while the check runs
        feed(m, frame(100, seed=100 + i), at=T0 + timedelta(minutes=i))
        assert m.step() == [] and not m.due()  # one check at a time: nothing queues
    assert len(m.window) == 1_000 and m.checks == 1
    gate.set()
    assert len(m.poll(wait=10)) == 1
    m.close()


def test_closing_waits_for_the_running_check_or_stores_it_as_skipped_with_why(tmp_path):
    clock, sent = FakeClock(T0), []
    store = Store(f"sqlite:///{tmp_path / 'churn.db'}", clock=clock)
    try:
        m, gate = checking(tmp_path, clock, sent, store, seed=2)
        threading.Timer(0.3, gate.set).start()  # finishes within the wait: handled and stored as checked
        (out,) = m.close(wait=10.0)
        assert isinstance(out.result, DriftResult) and not m.running
        assert list(store.drift_runs().status) == ["checked"]

        clock.advance(60)  # a run is keyed by its time
        m, gate = checking(tmp_path, clock, sent, store, seed=3)  # the gate is not set in time: ended after the wait, a skipped run says why
        (out,) = m.close(wait=0.2)
        gate.set()
        assert isinstance(out.result, Skipped) and out.run_id is not None
        assert out.result.reason.startswith("the stream stopped while this check ran after waiting 0.2 s for it")
        assert "drift_finish_s" in out.result.reason

        clock.advance(60)
        stop = threading.Event()  # a stop signal during the wait ends it at once
        m, gate = checking(tmp_path, clock, sent, store, seed=4)
        stop.set()
        (out,) = m.close(wait=30.0, give_up=stop.is_set, why="this worker handed partition 0 (drift leadership) over")
        gate.set()
        assert isinstance(out.result, Skipped) and "handed partition 0" in out.result.reason
        assert "drift_finish_s" not in out.result.reason  # the remedy is for a stream that stopped, not a handover
        runs = store.drift_runs(status=None)
        assert list(runs.status) == ["checked", "skipped", "skipped"] and runs.status_reason.iloc[-1] == out.result.reason
        assert sent == []
    finally:
        store.close()


def test_closing_without_waiting_still_handles_a_check_that_had_finished(tmp_path):
    clock, sent = FakeClock(T0), []
    m = monitor(tmp_path, clock, sent)  # inline: the check is done when submitted
    feed(m, frame(500, seed=2))
    m.step()
    (out,) = m.close()
    assert isinstance(out.result, DriftResult)  # not dropped because nobody polled it


@pytest.mark.slow  # ~15-25 s, most of it Evidently's import
def test_real_evidently_check_detects_a_shift(tmp_path):
    cfg = CFG.replace(min_rows=100)
    ref = frame(600, seed=1)
    clock, sent = FakeClock(T0), []
    m = DriftMonitor(ref, "3", reference_risk=np.full(600, 0.2) + np.linspace(0, 0.1, 600), columns=COLS,
                     config=cfg, report_dir=tmp_path / "drift", clock=clock, requester=sent.append,
                     check=run_check)
    feed(m, frame(600, seed=2, shift=1.0), risk=0.6)
    m.submit(full_report=False)
    (out,) = m.poll()
    r = out.result
    assert isinstance(r, DriftResult) and r.rows == 600 and r.reference_rows == 600
    assert r.drifted_count == 3 and r.drifted_share == pytest.approx(0.6) and r.dataset_drift
    assert [f.drifted for f in r.features] == [True, True, True, False, False]
    assert all(f.method == "K-S p_value" and f.threshold == 0.05 for f in r.features)  # <= 1,000 rows
    assert r.prediction is not None and r.prediction.drifted
    assert out.alert.level is Level.CRITICAL and len(sent) == 1
    assert len(list((tmp_path / "drift").glob("drift-*.json"))) == 1


def test_a_dead_worker_is_replaced_without_raising_into_the_stream(tmp_path, caplog):
    from concurrent.futures import BrokenExecutor

    class Dead(make_executor("inline").__class__):
        def submit(self, fn, /, *args, **kwargs):
            raise BrokenExecutor("worker killed")

    clock, sent = FakeClock(T0), []
    m = monitor(tmp_path, clock, sent, executor=Dead())
    feed(m, frame(500, seed=2))
    m.submit()
    (failed,) = m.poll()  # the check that could not run is an outcome (and a store row), not silence
    assert isinstance(failed.result, Failed) and "BrokenExecutor: worker killed" in failed.result.reason
    assert "drift worker is gone" in caplog.text and not failed.retrain_requested
    clock.advance(3600)
    feed(m, frame(500, seed=3))
    m.submit()  # the replacement (inline, as configured) runs it
    (out,) = m.poll()
    assert out.alert.level is Level.HEALTHY


def test_with_no_requester_critical_drift_is_recorded_as_not_requested_and_starts_no_cooldown(tmp_path):
    from pipeline.drift.loop import RETRAIN_SKIPPED

    clock = FakeClock(T0)
    store = Store(f"sqlite:///{tmp_path / 'churn.db'}", clock=clock)
    ref = frame(1_000, seed=1)
    m = DriftMonitor(ref, "3", reference_risk=np.full(len(ref), 0.1), columns=COLS, config=CFG, store=store,
                     report_dir=tmp_path / "drift", clock=clock, check=fake_check)  # fmt: skip
    feed(m, frame(500, seed=10, shift=2.0), risk=0.5)
    m.step()
    (out,) = m.step()
    assert out.alert.level is Level.CRITICAL and not out.retrain_requested
    assert any(r.startswith(f"{RETRAIN_SKIPPED}: no retrain requester") for r in store.drift_runs().iloc[-1]["reasons"])
    assert not (tmp_path / "drift" / "retrain-cooldown.json").exists()


def test_skipped_and_failed_checks_are_stored_with_their_reason(tmp_path):
    """Every check that came due is a drift_runs row: skipped (too few rows) and failed
    (the check raised) with their reasons; the default reader still returns checked runs."""
    clock, sent = FakeClock(T0), []
    store = Store(f"sqlite:///{tmp_path / 'churn.db'}", clock=clock)

    def broken(*args, **kwargs):
        raise ValueError("Evidently could not read column 'b': all values are NaN")

    m = monitor(tmp_path, clock, sent, store=store)
    feed(m, frame(50, seed=2))
    m.submit()
    (skipped,) = m.poll()
    assert isinstance(skipped.result, Skipped) and skipped.run_id is not None
    clock.advance(60)
    m._check = broken
    feed(m, frame(300, seed=3))
    m.submit()
    (failed,) = m.poll()
    assert isinstance(failed.result, Failed)
    clock.advance(60)
    m._check = fake_check
    feed(m, frame(300, seed=4))
    m.submit()
    (ok,) = m.poll()
    every = store.drift_runs(status=None)
    assert every.status.tolist() == ["skipped", "failed", "checked"]
    assert "window has 50 rows" in every.status_reason.iloc[0]
    # a day snapshot is every active user: waiting does not grow it (a small source's population)
    assert "set CHURN_DRIFT_MIN_ROWS <= 50" in every.status_reason.iloc[0]
    assert every.status_reason.iloc[1] == "ValueError: Evidently could not read column 'b': all values are NaN"
    assert every.rows.tolist()[:2] == [50, 350] and every.level.tolist()[:2] == ["Skipped", "Failed"]
    assert store.drift_runs().run_id.tolist() == [ok.run_id]  # default: the checks that ran
    assert store.drift_runs(status="failed").status_reason.tolist() == [every.status_reason.iloc[1]]
    store.close()


@pytest.mark.slow  # the check process imports Evidently (~3-10 s)
def test_the_check_process_answers_then_exits_cleanly_at_shutdown():
    """The process skips interpreter teardown at exit (``_exit_now``): results already
    reached the parent, and the process ends with status 0 when the executor shuts down."""
    import os

    ex = make_executor("process")
    try:
        pid = ex.submit(os.getpid).result(timeout=180)
        procs = list(ex._processes.values())  # type: ignore[attr-defined]
        assert pid != os.getpid() and [p.pid for p in procs] == [pid]
    finally:
        ex.shutdown(wait=True)
    assert [p.exitcode for p in procs] == [0]


def test_a_run_that_ends_on_its_own_checks_the_rows_its_last_check_did_not_see(tmp_path):
    """The quick demo caught up while its one check (17-30 s here) ran: every event day
    after it, the drifted live phase included, went unchecked, and `churn drift` showed a
    stale 'Healthy'. Closing with a wait now gives the newest rows one last check."""
    clock, sent = FakeClock(T0), []
    store = Store(f"sqlite:///{tmp_path / 'churn.db'}", clock=clock)
    try:
        m, gate = checking(tmp_path, clock, sent, store, seed=2)
        feed(m, frame(500, seed=5, shift=2.0), risk=0.5, at=T0 + timedelta(days=3))  # while it runs
        assert m.step() == [] and m.running
        gate.set()
        out = m.close(wait=10.0)
        assert [type(o.result) for o in out] == [DriftResult, DriftResult] and m.checks == 2
        assert out[-1].alert.level is Level.CRITICAL and out[-1].run_id is not None  # stored (keyed by time)

        clock.advance(60)  # nothing new since the last check: no extra check; without a wait: none either
        gate = threading.Event()
        gate.set()
        m = gated_monitor(tmp_path, clock, sent, store, gate)
        feed(m, frame(500, seed=3))
        m.step()
        assert len(m.close(wait=10.0)) == 1 and m.checks == 1
    finally:
        store.close()
