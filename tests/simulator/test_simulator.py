"""Data checks on generated histories: schema, churn band, causality, billing, drift."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from pipeline import events as ev
from pipeline.errors import SimulatorError
from pipeline.simulator import SCENARIOS, SimConfig, Simulator
from pipeline.simulator.history import Summary


def _history(**kw):
    sim = Simulator(SimConfig(**({"users": 3000, "days": 120, "seed": 7} | kw)))
    results = list(sim.run())
    return sim, results


@pytest.fixture(scope="module")
def history():
    sim, results = _history()
    lines = [line for r in results for line in r.lines]
    frame = pd.DataFrame([ev.to_builtins(ev.decode(line)) for line in lines])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return sim, results, lines, frame


def test_every_line_is_a_valid_event_with_unique_id(history):
    _, _, lines, frame = history
    assert len(lines) > 100_000
    assert frame["event_id"].is_unique
    # byte-identical to the contract's own encoder
    for line in lines[:: max(1, len(lines) // 2000)]:
        assert ev.encode(ev.decode(line)) == line


def test_events_are_in_event_time_order(history):
    _, _, _, frame = history
    assert frame["ts"].is_monotonic_increasing


def test_monthly_churn_in_band(history):
    sim, results, _, _ = history
    summary = Summary()
    for r in results:
        summary.add(r, sim)
    assert 0.02 <= summary.monthly_churn <= 0.08, summary.as_dict()
    assert summary.voluntary > 0 and summary.involuntary > 0
    assert summary.by_type["cancel"] == summary.voluntary + summary.involuntary


def test_no_events_after_cancel_and_signup_first(history):
    _, _, _, frame = history
    last = frame.groupby("user_id")["ts"].max()
    cancel = frame[frame.type == "cancel"].set_index("user_id")["ts"]
    assert (cancel.groupby(level=0).size() == 1).all(), "a user cancels at most once"
    assert (last.loc[cancel.index] == cancel).all()
    # the cancel is strictly the user's last event (ties would make order ambiguous)
    after = frame.merge(cancel.rename("cancel_ts"), left_on="user_id", right_index=True)
    assert ((after.ts < after.cancel_ts) | (after.type == "cancel")).all()
    first = frame.groupby("user_id").head(1)
    assert (first.type == "signup").all()
    assert frame[frame.type == "signup"]["user_id"].is_unique


def test_payments_fall_on_billing_days(history):
    _, _, _, frame = history
    signup = frame[frame.type == "signup"].set_index("user_id")["ts"]
    bill_dom = np.minimum(signup.dt.day, 28)
    pays = frame[frame.type.isin(["payment", "payment_failed"])].copy()
    pays["dom"] = pays.ts.dt.day
    pays["bill_dom"] = pays.user_id.map(bill_dom)
    pays["at_signup"] = (pays.ts - pays.user_id.map(signup)).dt.total_seconds() <= 1
    failures = defaultdict(list)
    for u, t in frame[frame.type == "payment_failed"][["user_id", "ts"]].itertuples(index=False):
        failures[u].append(t)
    off_cycle = pays[~pays.at_signup & (pays.dom != pays.bill_dom)]
    # every off-cycle charge is a retry within 15 days after a failed payment
    for u, t in off_cycle[["user_id", "ts"]].itertuples(index=False):
        assert any(pd.Timedelta(0) < t - f <= pd.Timedelta(days=15) for f in failures[u]), (u, t)
    on_cycle = pays[~pays.at_signup & (pays.dom == pays.bill_dom)]
    assert len(on_cycle) > 5 * len(off_cycle)
    # roughly one on-cycle charge per active user-month
    assert (frame.type == "payment_failed").sum() > 0


def test_involuntary_churn_follows_failed_retries(history):
    _, _, _, frame = history
    inv = frame[(frame.type == "cancel") & (frame.reason == "involuntary")]
    assert len(inv) > 0
    fails = frame[frame.type == "payment_failed"].groupby("user_id").size()
    assert (fails.reindex(inv.user_id).fillna(0) >= 4).all()


def test_same_seed_byte_identical_other_seed_differs():
    _, a = _history(users=800, days=40, seed=3)
    _, b = _history(users=800, days=40, seed=3)
    _, c = _history(users=800, days=40, seed=4)
    la = b"".join(line for r in a for line in r.lines)
    assert la == b"".join(line for r in b for line in r.lines)
    assert la != b"".join(line for r in c for line in r.lines)
    assert all(np.array_equal(x.hazard, y.hazard) for x, y in zip(a, b, strict=True))


def test_randomness_is_owned_not_global():
    np.random.seed(1)
    _, a = _history(users=300, days=10, seed=3)
    np.random.seed(2)
    _, b = _history(users=300, days=10, seed=3)
    assert [r.lines for r in a] == [r.lines for r in b]


def test_hazard_side_table_ranks_churners_and_is_not_in_events(history):
    sim, results, lines, frame = history
    assert not any(b"hazard" in line or b"satisfaction" in line for line in lines)
    hz = pd.DataFrame({
        "user": np.concatenate([r.hazard_users for r in results]),
        "day": np.concatenate([np.full(len(r.hazard_users), r.day) for r in results]),
        "hazard": np.concatenate([r.hazard for r in results]),
    })
    assert hz.hazard.between(0, 1).all()
    churned = set(np.flatnonzero(sim.pop.cancel_day >= 0))
    by_user = hz.groupby("user").hazard.mean()
    is_churner = by_user.index.isin(list(churned))
    assert by_user[is_churner].mean() > 2 * by_user[~is_churner].mean()


def test_some_churners_fade_and_others_leave_abruptly(history):
    _, _, _, frame = history
    cancels = frame[frame.type == "cancel"].set_index("user_id").ts
    sess = frame[frame.type == "session"][["user_id", "ts"]]
    sess = sess[sess.user_id.isin(cancels.index)].copy()
    sess["before"] = (sess.user_id.map(cancels) - sess.ts).dt.days
    last14 = sess[sess.before < 14].groupby("user_id").size()
    prev14 = sess[(sess.before >= 14) & (sess.before < 28)].groupby("user_id").size()
    both = pd.concat([last14, prev14], axis=1, keys=["last", "prev"]).fillna(0)
    both = both[both.prev >= 5]
    ratio = both["last"] / both["prev"]
    assert (ratio < 0.4).mean() > 0.1, "some churners fade out"
    assert (ratio > 0.7).mean() > 0.2, "others leave abruptly"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_drift_scenarios_move_feature_distributions(scenario):
    def frame(drift):
        _, res = _history(users=1500, days=60, seed=11, drift=drift, drift_day=30 if drift else None)
        df = pd.DataFrame([ev.to_builtins(ev.decode(x)) for r in res[35:] for x in r.lines])
        return df

    base, shifted = frame(None), frame(scenario)
    if scenario == "price_increase":
        b = base[base.type == "payment"].amount.mean()
        s = shifted[shifted.type == "payment"].amount.mean()
        assert s > 1.15 * b
    else:
        b = base[base.type == "session"].watch_minutes.mean()
        s = shifted[shifted.type == "session"].watch_minutes.mean()
        assert s < 0.85 * b
    if scenario == "device_shift":
        assert (shifted[shifted.type == "session"].device == "mobile").mean() > 0.5


def test_bad_configuration_is_a_clear_error():
    with pytest.raises(SimulatorError, match="unknown drift scenario 'x'"):
        SimConfig(drift="x", drift_day=3)
    with pytest.raises(SimulatorError, match="needs --drift-day"):
        SimConfig(drift="price_increase")
    with pytest.raises(SimulatorError, match="users must be >= 1"):
        SimConfig(users=0)
    with pytest.raises(SimulatorError, match="UTC midnight"):
        SimConfig(start=datetime(2026, 1, 1))


def test_save_load_continues_identically(tmp_path):
    a = Simulator(SimConfig(users=500, days=20, seed=5))
    list(a.run())
    a.save(tmp_path)
    cont = [r.lines for r in Simulator.load(tmp_path).run(days=5)]
    b = Simulator(SimConfig(users=500, days=20, seed=5))
    list(b.run())
    assert cont == [r.lines for r in b.run(days=5)]
    assert cont[0]  # the continuation has events
    assert [r.lines for r in a.run(days=5)] == cont  # saving does not disturb the saved simulator
    with pytest.raises(SimulatorError, match="run `churn simulate` first"):
        Simulator.load(tmp_path / "nothing")
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(SimulatorError, match="unreadable"):
        Simulator.load(tmp_path)


def test_live_continuation_keeps_signing_up_users():
    sim = Simulator(SimConfig(users=1000, days=30, seed=2, start=datetime(2026, 2, 1, tzinfo=UTC)))
    list(sim.run())
    n = len(sim.pop)
    later = list(sim.run(days=30))
    assert len(sim.pop) > n
    assert sum(len(r.lines) for r in later) > 0
