"""Realised performance (issue 18): the published scores joined with the cancels that
followed, checked against a plain loop; labels and population equal training's at the
same cutoff; bootstrap intervals are seeded and bracket the estimate."""

from __future__ import annotations

import doctest
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from pipeline.evaluation import calibration_table
from pipeline.features.timebase import DAY_US
from pipeline.monitoring import lifecycle as lifecycle_mod
from pipeline.monitoring import realised as rz
from pipeline.monitoring.lifecycle import Lifecycle, read_lifecycle

T0 = 20_500 * DAY_US  # a UTC midnight (2026-02-16)


def world(seed: int, users: int = 400, days: int = 40):
    """Random subscriptions (some cancel, some come back) and score points of two versions."""
    rng = np.random.default_rng(seed)
    signups, cancels, points = [], [], []
    for i in range(users):
        u = f"u{i}"
        t = T0 - int(rng.integers(1, 30)) * DAY_US
        signups.append((u, t))
        while True:
            t += int(rng.integers(1, 60 * DAY_US))
            if t > T0 + days * DAY_US or rng.random() < 0.5:
                break
            cancels.append((u, t))
            t += int(rng.integers(1, 20 * DAY_US))
            if rng.random() < 0.4:
                signups.append((u, t))
            else:
                break
        # score points at random times; risk higher for users who cancel soon
        for _ in range(int(rng.integers(0, 12))):
            at = T0 - 5 * DAY_US + int(rng.integers(0, (days + 5) * DAY_US))
            soon = any(0 < c - at <= 10 * DAY_US for uu, c in cancels if uu == u)
            risk = float(np.clip(rng.normal(0.6 if soon else 0.3, 0.2), 0, 1))
            points.append((u, at, risk, "1" if at < T0 + 15 * DAY_US else "2"))
    hist = pd.DataFrame(points, columns=["user_id", "time_us", "risk", "model_version"])
    end = T0 + days * DAY_US
    return hist, Lifecycle.of(signups, cancels, end)


def reference(hist: pd.DataFrame, lc: Lifecycle, t: int, horizon: int) -> dict[str, dict]:
    """The slow, obviously-correct version: loops over users."""
    sign = list(lc.signups.itertuples(index=False))
    canc = list(lc.cancels.itertuples(index=False))
    by_version: dict[str, list[tuple[float, int]]] = {}
    for u in sorted(set(hist.user_id)):
        last_s = max((e.t for e in sign if e.user_id == u and e.t <= t), default=None)
        last_c = max((e.t for e in canc if e.user_id == u and e.t <= t), default=None)
        if last_s is None or (last_c is not None and last_c >= last_s):
            continue
        mine = [(p.time_us, p.risk, p.model_version) for p in hist.itertuples(index=False)
                if p.user_id == u and p.time_us <= t]
        if not mine:
            continue
        _, risk, version = max(mine, key=lambda x: x[0])
        label = int(any(e.user_id == u and t < e.t <= t + horizon * DAY_US for e in canc))
        by_version.setdefault(version, []).append((risk, label))
    out = {}
    for v, pairs in by_version.items():
        p = np.array([r for r, _ in pairs])
        y = np.array([lab for _, lab in pairs], float)
        k = int(y.sum())
        row = {"n": len(y), "positives": k, "base_rate": k / len(y)}
        if 0 < k < len(y):
            row["roc_auc"] = roc_auc_score(y, p)
            row["pr_auc"] = average_precision_score(y, p)
            top = np.argsort(-p, kind="stable")[: int(round(0.1 * len(p)))]
            row["lift_10_approx"] = y[top].mean() / y.mean()
            cal = calibration_table(y, p, 10)
            row["ece"] = sum(abs(g) * n for g, n in zip(cal.gap, cal.n, strict=True)) / len(y)
        out[v] = row
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_a_plain_loop(seed):
    hist, lc = world(seed)
    horizon = 10
    days = rz.matured_days(int(hist.time_us.min()), lc.end_us, horizon)
    assert days[0] % DAY_US == 0 and days[-1] + horizon * DAY_US <= lc.end_us
    got = rz.realised_performance(hist, lc, days[::4], horizon, n_boot=0, min_rows=10)
    assert len(got) > 5 and set(got.model_version) == {"1", "2"}
    for r in got.itertuples(index=False):
        t = int(r.day.value // 1_000)
        ref = reference(hist, lc, t, horizon)[r.model_version]
        assert (r.n, r.positives) == (ref["n"], ref["positives"])
        assert r.base_rate == pytest.approx(ref["base_rate"])
        if "roc_auc" in ref:
            assert r.roc_auc == pytest.approx(ref["roc_auc"]) and r.pr_auc == pytest.approx(ref["pr_auc"])
            assert r.ece == pytest.approx(ref["ece"])
            assert r.lift_10 == pytest.approx(ref["lift_10_approx"], rel=0.35)  # ties / rounding of the top 10 %
        assert r.base_rate_low <= r.base_rate <= r.base_rate_high


def test_bootstrap_intervals_are_seeded_and_bracket_the_estimate():
    hist, lc = world(5, users=800)
    days = rz.matured_days(int(hist.time_us.min()), lc.end_us, 10)[5:8]
    a = rz.realised_performance(hist, lc, days, 10, n_boot=60, min_rows=30)
    b = rz.realised_performance(hist, lc, days, 10, n_boot=60, min_rows=30)
    pd.testing.assert_frame_equal(a, b)
    ok = a.dropna(subset=["roc_auc"])
    assert len(ok) >= 3
    for m in rz.METRICS:
        assert (ok[f"{m}_low"] <= ok[m] + 1e-9).all() and (ok[m] <= ok[f"{m}_high"] + 1e-9).all()
        assert (ok[f"{m}_high"] > ok[f"{m}_low"]).all()


def test_too_few_rows_or_one_class_give_counts_but_no_metrics():
    hist = pd.DataFrame({"user_id": ["a", "b"], "time_us": [T0 - 1, T0 - 1], "risk": [0.2, 0.4], "model_version": "1"})
    lc = Lifecycle.of([("a", 0), ("b", 0)], [], T0 + 40 * DAY_US)
    (row,) = rz.realised_day(hist, lc, T0, 30, n_boot=10, min_rows=1)
    assert (row["n"], row["positives"]) == (2, 0) and np.isnan(row["roc_auc"]) and np.isnan(row["lift_10"])
    (row,) = rz.realised_day(hist, lc, T0, 30, n_boot=10)  # below min_rows
    assert np.isnan(row["ece"]) and row["n"] == 2


def test_no_matured_day_before_the_horizon_has_passed():
    assert rz.matured_days(T0 + 5, T0 + 30 * DAY_US, 30) == []
    assert rz.matured_days(T0, T0 + 30 * DAY_US, 30) == [T0]
    assert doctest.testmod(rz).failed == 0 and doctest.testmod(lifecycle_mod).failed == 0


def test_population_and_labels_equal_trainings_at_the_same_cutoff(tmp_path):
    """The realised join's "active at t" and "cancelled in (t, t+H]" are the training
    snapshot's (pipeline.labels.build_snapshots) on the same simulated log."""
    from pipeline.labels import build_snapshots
    from pipeline.simulator import SimConfig
    from pipeline.testing import simulated_log

    log = simulated_log(tmp_path / "log", users=400, days=50, partitions=2, seed=3)
    start = pd.Timestamp(SimConfig(users=400, days=50, seed=3).start)
    try:
        lc = read_lifecycle(log)
        t = int(start.value // 1_000) // DAY_US * DAY_US + 30 * DAY_US
        snap = build_snapshots(log, horizon_days=7, cutoffs_us=[t], lateness=timedelta(hours=24))
    finally:
        log.close()
    table = snap.table
    assert len(table) > 100
    active = set(rz.active_at(lc, t).tolist())
    assert active == set(table.user_id)
    hist = pd.DataFrame({"user_id": sorted(active), "time_us": t - 1, "risk": 0.5, "model_version": "1"})
    (row,) = rz.realised_day(hist, lc, t, 7, n_boot=0)
    assert (row["n"], row["positives"]) == (len(table), int(table.label.sum()))
