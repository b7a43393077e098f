"""Drift episodes and the retrain policy (issue 18): Critical drift opens an episode, the
retrain waits for labelled post-onset data (or a realised-AUC drop), every decision is
stored with its reason, and the cooldown starts only once a run was created."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pipeline.clock import FakeClock
from pipeline.drift import episodes as ep
from pipeline.drift.config import DriftConfig
from pipeline.drift.monitor import DriftMonitor
from pipeline.errors import ConfigError
from pipeline.store import Store
from tests.drift.helpers import COLS, fake_check, frame

T0 = datetime(2026, 7, 1, tzinfo=UTC)
CFG = DriftConfig(window_rows=1_000, min_rows=50, every_rows=10**9, per_event_day=False, full_report_every=0,
                  executor="inline", any_feature_critical=50.0, retrain_after_days=30, retrain_min_churners=5,
                  retrain_cooldown_hours=24)  # fmt: skip
REF = frame(400, seed=1)


def test_docstring_examples():
    assert doctest.testmod(ep).failed == 0


def test_policy_defers_until_the_horizon_has_passed_and_there_are_churners():
    onset = T0
    d = ep.decide(onset, ep.Evidence(T0 + timedelta(days=5), churners=100), CFG)
    assert d.action == "defer" and d.due == T0 + timedelta(days=30) and "mature on 2026-07-31" in d.reason
    d = ep.decide(onset, ep.Evidence(T0 + timedelta(days=31), churners=2), CFG)
    assert d.action == "defer" and "only 2 churners < 5" in d.reason
    d = ep.decide(onset, ep.Evidence(T0 + timedelta(days=30), churners=5), CFG)
    assert d.action == "request" and "30 days since the onset 2026-07-01, 5 churners >= 5" in d.reason
    # realised performance fell: earlier, if there is anything to learn from
    early = ep.Evidence(T0 + timedelta(days=8), churners=9, realised_auc=0.70, baseline_auc=0.80)
    assert ep.decide(onset, early, CFG).action == "request"
    small = ep.Evidence(T0 + timedelta(days=8), churners=9, realised_auc=0.77, baseline_auc=0.80)
    assert ep.decide(onset, small, CFG).action == "defer"  # a drop of 0.03 < 0.05


def test_unset_the_wait_is_the_champions_own_label_horizon():
    """A 14-day model's post-onset labels mature 14 days after the onset: the retrain used to
    wait a fixed 30 whatever the champion's horizon. Unset, the wait is the horizon; set,
    the setting wins; unknown (an untagged model), 30."""
    unset = DriftConfig(**{**CFG.__dict__, "retrain_after_days": None})
    at = ep.Evidence(T0 + timedelta(days=15), churners=100)
    d = ep.decide(T0, at, unset, horizon_days=14)
    assert d.action == "request" and "14 days since the onset" in d.reason
    d = ep.decide(T0, ep.Evidence(T0 + timedelta(days=5), churners=100), unset, horizon_days=14)
    assert d.due == T0 + timedelta(days=14) and "(14 d after the onset" in d.reason
    assert ep.decide(T0, at, unset).due == T0 + timedelta(days=30)  # unknown horizon
    assert ep.decide(T0, at, CFG, horizon_days=14).due == T0 + timedelta(days=30)  # configured: 30


def test_the_monitor_waits_its_champions_horizon(tmp_path):
    unset = DriftConfig(**{**CFG.__dict__, "retrain_after_days": None})
    clock = FakeClock(T0)
    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        m = DriftMonitor(REF, "3", columns=COLS, config=unset, store=store, report_dir=tmp_path, clock=clock,
                         requester=Runs(), check=fake_check, horizon_days=7)  # fmt: skip
        for day in (2, 3):
            check(m, day, 3.0)
        assert (store.retrain_decisions()["due"].dropna() == T0 + timedelta(days=9)).all()
        m.set_model(REF, "4", horizon_days=21)  # a new champion brings its own horizon
        for day in (4, 5):
            check(m, day, 3.0)
        assert store.retrain_decisions()["due"].dropna().iloc[-1] == T0 + timedelta(days=25)
        m.close()


def test_training_window_and_gate_start_at_the_onset():
    p = ep.train_parameters(T0 + timedelta(hours=7), CFG)
    assert p == {"gate_from": "2026-07-01"}  # the deployment's usual window; the gate on post-onset rows
    assert ep.train_parameters(T0, CFG.replace(retrain_lookback_days=0, retrain_every_days=1)) == {
        "start": "2026-07-01", "warmup_days": 0, "every_days": 1, "gate_from": "2026-07-01"}
    assert ep.train_parameters(T0, CFG.replace(retrain_post_onset=False)) == {}
    # the episode goes with the request, so the train flow can record its gate outcome beside it
    assert ep.train_parameters(T0, CFG, "e1") == {"gate_from": "2026-07-01", "episode_id": "e1"}
    assert ep.train_parameters(T0, CFG.replace(retrain_post_onset=False), "e1") == {"episode_id": "e1"}


def test_policy_settings_are_validated_with_the_remedy():
    with pytest.raises(ConfigError, match=r"retrain_min_churners=0 \(an int >= 1"):
        DriftConfig(retrain_min_churners=0)
    with pytest.raises(ConfigError, match=r"retrain_policy='later' \('episode' or 'immediate'\)"):
        DriftConfig(retrain_policy="later")
    with pytest.raises(ConfigError, match=r"retrain_after_days=0"):
        DriftConfig(retrain_after_days=0)
    with pytest.raises(ConfigError, match=r"retrain_auc_drop=1.5"):
        DriftConfig(retrain_auc_drop=1.5)


class Runs:
    """A requester that creates numbered runs, or fails while ``fail`` is set."""

    def __init__(self) -> None:
        self.requests, self.fail = [], None

    def request(self, req):
        if self.fail:
            raise RuntimeError(self.fail)
        self.requests.append(req)
        return f"run-{len(self.requests)}"


def check(m: DriftMonitor, day: int, shift: float):
    """One check of a window of event day ``day`` (shifted: Critical by share)."""
    at = T0 + timedelta(days=day)
    m.window.clear()  # one day per window, as the stream's day snapshots
    m.clock.advance(60)  # each check is its own stored run
    m.observe(frame(200, seed=day + 10, shift=shift).to_numpy(), np.full(200, 0.1), at)
    m.submit()
    (out,) = m.poll()
    return out


def cancels(store: Store, n: int, at: datetime) -> None:
    store.upsert_scores([{"user_id": f"gone{i}", "risk": 0.5, "model_version": "3", "features_time": at,
                          "active": False} for i in range(n)])  # fmt: skip


def decisions(store: Store) -> list[str]:
    return store.retrain_decisions()["decision"].tolist()


def test_critical_drift_opens_an_episode_and_the_retrain_waits_for_post_onset_labels(tmp_path):
    clock = FakeClock(T0)
    runs = Runs()
    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        m = DriftMonitor(REF, "3", columns=COLS, config=CFG, store=store, report_dir=tmp_path, clock=clock,
                         requester=runs, check=fake_check)  # fmt: skip
        assert check(m, 1, 0.0).alert.level.value == "Healthy" and store.drift_episodes().empty
        for day in (2, 3):
            out = check(m, day, 3.0)
            assert out.alert.level.value == "Critical" and not out.retrain_requested
        (episode,) = store.drift_episodes().to_dict("records")
        assert episode["status"] == "open" and episode["onset"] == T0 + timedelta(days=2)
        d = store.retrain_decisions()
        assert d["decision"].tolist() == [ep.OPENED, ep.DEFERRED, ep.DEFERRED]
        assert (d["due"].dropna() == T0 + timedelta(days=32)).all() and "mature on 2026-08-02" in d["reason"].iloc[1]
        assert runs.requests == [] and m.cooldown.last() is None  # nothing sent: no cooldown
        # the stored check says why it did not ask
        assert any("deferred until 2026-08-02" in r for r in store.drift_runs()["reasons"].iloc[-1])

        # 30 days later, with churners since the onset: one request, with the post-onset window
        cancels(store, 6, T0 + timedelta(days=20))
        clock.advance(3600)
        out = check(m, 33, 3.0)
        assert out.retrain_requested and len(runs.requests) == 1
        req = runs.requests[0]
        assert req.payload["episode_id"]  # the train flow records its gate outcome beside the episode
        assert req.payload["train_parameters"] == {"gate_from": "2026-07-03", "episode_id": req.payload["episode_id"]}
        assert decisions(store)[-2:] == [ep.REQUESTED, ep.SENT]
        sent = store.retrain_decisions().iloc[-1]
        assert sent["run"] == "run-1" and "cooldown 24 h started" in sent["reason"]
        assert m.cooldown.last() == clock.now()  # the cooldown started with the run
        assert store.drift_episodes()["status"].iloc[0] == "retraining"

        # the next check while that run is pending asks nothing
        clock.advance(3600)
        before = len(decisions(store))
        assert not check(m, 34, 3.0).retrain_requested and len(decisions(store)) == before

        # a promoted retrain closes the episode
        m.set_model(REF, "4")
        assert store.drift_episodes()["status"].iloc[0] == "closed"
        assert decisions(store)[-1] == ep.CLOSED
        m.close()


def test_a_failed_send_is_recorded_and_starts_no_cooldown_then_the_cooldown_is_recorded(tmp_path):
    clock = FakeClock(T0)
    runs = Runs()
    cfg = CFG.replace(retrain_after_days=1, retrain_min_churners=1)
    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        cancels(store, 3, T0 + timedelta(days=3))
        m = DriftMonitor(REF, "3", columns=COLS, config=cfg, store=store, report_dir=tmp_path, clock=clock,
                         requester=runs, check=fake_check)  # fmt: skip
        check(m, 2, 3.0)  # opens, deferred (1 day)
        runs.fail = "no PREFECT_API_URL: churn.drift.detected for model 3 not sent"
        assert check(m, 4, 3.0).retrain_requested  # wanted and tried ...
        assert decisions(store)[-2:] == [ep.REQUESTED, ep.SEND_FAILED]
        failed = store.retrain_decisions().iloc[-1]["reason"]
        assert "no PREFECT_API_URL" in failed and "no cooldown started" in failed
        assert m.cooldown.last() is None  # ... but nothing was created: the next check may ask again
        runs.fail = None
        check(m, 5, 3.0)
        assert decisions(store)[-1] == ep.SENT and m.cooldown.last() is not None
        # the run did not replace v3 (the gate rejected it); a day later the cooldown holds the next ask
        clock.advance(25 * 3600)
        m.cooldown.start("3", "run-x")  # e.g. another worker's request created a run meanwhile
        check(m, 6, 3.0)
        last = store.retrain_decisions().iloc[-1]
        assert last["decision"] == ep.COOLDOWN and "did not replace v3" in last["reason"] and "cooldown" in last["reason"]
        m.close()


def test_realised_auc_drop_asks_before_the_horizon(tmp_path):
    from pipeline.monitoring.realised import COLUMNS

    clock = FakeClock(T0)
    runs = Runs()
    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        rows = []
        for day, auc in ((-10, 0.80), (-9, 0.81), (4, 0.70), (5, 0.69), (6, 0.68)):
            r = dict.fromkeys(COLUMNS, float("nan")) | {"day": T0 + timedelta(days=day), "model_version": "3",
                                                        "horizon_days": 30, "n": 500, "positives": 30,
                                                        "roc_auc": auc}  # fmt: skip
            rows.append(r)
        store.record_realised(pd.DataFrame(rows), matured_at=T0, computed_at=T0)
        cancels(store, 10, T0 + timedelta(days=4))
        m = DriftMonitor(REF, "3", columns=COLS, config=CFG, store=store, report_dir=tmp_path, clock=clock,
                         requester=runs, check=fake_check)  # fmt: skip
        out = check(m, 2, 3.0)
        assert out.retrain_requested and len(runs.requests) == 1
        assert "realised ROC-AUC 0.690 < 0.805 before the onset - 0.05" in store.retrain_decisions()["reason"].iloc[1]
        m.close()


def test_without_a_requester_the_decision_says_nobody_was_told(tmp_path):
    cfg = CFG.replace(retrain_after_days=1, retrain_min_churners=1)
    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        cancels(store, 2, T0 + timedelta(days=3))
        m = DriftMonitor(REF, "3", columns=COLS, config=cfg, store=store, report_dir=tmp_path, clock=FakeClock(T0),
                         check=fake_check)  # fmt: skip
        check(m, 2, 3.0)
        check(m, 4, 3.0)
        assert decisions(store)[-1] == ep.NO_REQUESTER and m.cooldown.last() is None
        m.close()


def test_onset_is_the_first_day_of_the_streak_of_the_alerting_features():
    t = [T0 + timedelta(days=d) for d in range(5)]
    runs = pd.DataFrame({"run_id": [f"r{i}" for i in range(5)], "time": t, "window_start": t})
    feats = pd.DataFrame({"run_id": ["r0", "r2", "r3", "r4", "r4"], "feature": ["x", "x", "x", "x", "y"],
                          "drifted": [True, True, True, True, True]})  # fmt: skip
    assert ep.estimate_onset(t[4], ["x"], runs, feats) == t[2]  # r1 broke the streak
    assert ep.estimate_onset(t[4], ["y"], runs, feats) == t[4]
    assert ep.estimate_onset(t[4], [], runs, feats) == t[4]


def test_the_compressed_timeline_must_fit_the_loop():
    from pipeline.errors import SimulatorError
    from pipeline.simulator.scenarios import COMPRESSED, CompressedTimeline

    assert COMPRESSED.horizon_days == 7 and COMPRESSED.drift_day + COMPRESSED.retrain_after_days < COMPRESSED.days
    with pytest.raises(SimulatorError, match="cannot fit the drift on day 60, a retrain 21 days later"):
        CompressedTimeline(days=80)
    with pytest.raises(SimulatorError, match="unknown drift scenario 'flood'"):
        CompressedTimeline(drift="flood")


def test_an_open_episode_resolves_after_healthy_checks_in_a_row(tmp_path):
    """Drift that goes away closes its episode (no retrain wanted); a Critical check in
    between starts the count again; a retrain in flight is not cancelled by calm checks."""
    clock = FakeClock(T0)
    runs = Runs()
    cfg = CFG.replace(episode_resolve_checks=3)
    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        m = DriftMonitor(REF, "3", columns=COLS, config=cfg, store=store, report_dir=tmp_path, clock=clock,
                         requester=runs, check=fake_check)  # fmt: skip
        assert check(m, 1, 3.0).alert.level.value == "Critical"
        assert store.drift_episodes()["status"].tolist() == ["open"]
        for day, shift in ((2, 0.0), (3, 0.0), (4, 3.0), (5, 0.0), (6, 0.0)):  # 2 calm, drift again, 2 calm
            check(m, day, shift)
            assert store.drift_episodes()["status"].tolist() == ["open"], day
        check(m, 7, 0.0)  # the third Healthy check in a row
        (episode,) = store.drift_episodes().to_dict("records")
        assert episode["status"] == "closed" and episode["closed_at"] == T0 + timedelta(days=7)
        assert "drift subsided: 3 Healthy checks in a row" in episode["status_reason"]
        d = store.retrain_decisions()
        assert d["decision"].iloc[-1] == ep.RESOLVED and "no retrain needed" in d["reason"].iloc[-1]
        assert runs.requests == []
        # new drift opens a new episode
        check(m, 8, 3.0)
        assert store.drift_episodes()["status"].tolist() == ["closed", "open"]

        # a retrain in flight: calm checks leave its episode alone
        cancels(store, 6, T0 + timedelta(days=20))
        clock.advance(3600)
        assert check(m, 40, 3.0).retrain_requested
        for day in (41, 42, 43, 44):
            check(m, day, 0.0)
        assert store.drift_episodes()["status"].tolist() == ["closed", "retraining"]
        m.close()


def test_episode_resolve_checks_is_validated_and_zero_never_resolves(tmp_path):
    with pytest.raises(ConfigError, match=r"episode_resolve_checks=-1 \(an int >= 0; 0: never\)"):
        DriftConfig(episode_resolve_checks=-1)
    clock = FakeClock(T0)
    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        m = DriftMonitor(REF, "3", columns=COLS, config=CFG.replace(episode_resolve_checks=0), store=store,
                         report_dir=tmp_path, clock=clock, requester=Runs(), check=fake_check)  # fmt: skip
        check(m, 1, 3.0)
        for day in range(2, 12):
            check(m, day, 0.0)
        assert store.drift_episodes()["status"].tolist() == ["open"]
        m.close()


def test_a_new_champions_first_window_is_checked_at_once(tmp_path):
    """After a switch the day rule waited for the next event day, whose window replaced
    the first one: the new champion's first day was never checked."""
    clock = FakeClock(T0)
    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        m = DriftMonitor(REF, "3", columns=COLS, config=CFG.replace(per_event_day=True), store=store,
                         report_dir=tmp_path, clock=clock, requester=Runs(), check=fake_check)  # fmt: skip
        m.observe(frame(200, seed=11).to_numpy(), np.full(200, 0.1), T0 + timedelta(days=1))
        assert not m.due()  # the first model: the day rule, as before
        m.set_model(REF, "4")
        m.observe(frame(20, seed=12).to_numpy(), np.full(20, 0.1), T0 + timedelta(days=2))
        assert not m.due()  # too few rows to check yet
        m.observe(frame(200, seed=13).to_numpy(), np.full(200, 0.1), T0 + timedelta(days=2))
        assert m.due() and "first window of the new champion v4" in m.cadence.reason
        m.submit()
        (out,) = m.poll()
        assert out.result.model_version == "4" and not m.due()
        m.close()
