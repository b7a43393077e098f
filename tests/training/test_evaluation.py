from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluation import (
    calibration_table,
    gains_table,
    lift_at,
    lift_ceiling,
    metrics,
    paired_auc_difference,
    top_share_weights,
)

Y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
P = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])


def test_lift_by_hand() -> None:
    # base rate 0.3; top 20 % = rows 0, 1 -> 1 churner -> precision 0.5 -> lift 5/3
    assert lift_at(Y, P, 0.2) == pytest.approx(0.5 / 0.3)
    m = metrics(Y, P)
    assert m["precision_10"] == 1.0 and m["recall_10"] == pytest.approx(1 / 3)
    assert m["lift_10"] == pytest.approx(1 / 0.3)
    assert m["lift_10_ceiling"] == pytest.approx(1 / 0.3)


def test_ties_at_the_cut_off_count_fractionally() -> None:
    w = top_share_weights([0.5, 0.5, 0.5, 0.1], 0.5)
    assert w.tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3, 0])
    # a constant score has lift exactly 1 whatever the row order
    assert lift_at([1, 0, 0, 0, 1, 0, 0, 0, 0, 0], np.zeros(10), 0.1) == pytest.approx(1.0)


def test_lift_ceiling() -> None:
    assert lift_ceiling(0.05, 0.10) == pytest.approx(10.0)
    assert lift_ceiling(0.25, 0.10) == pytest.approx(4.0)


def test_calibration_and_gains_tables() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(5_000)
    y = (rng.random(5_000) < p).astype(int)
    cal = calibration_table(y, p)
    assert len(cal) == 10 and cal["n"].sum() == 5_000
    assert np.abs(cal["gap"]).max() < 0.06  # calibrated by construction
    g = gains_table(y, p)
    assert g["share_of_churners"].is_monotonic_increasing and g["share_of_churners"].iloc[-1] == pytest.approx(1.0)


def test_metrics_of_a_perfect_and_a_random_score() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2_000)
    assert metrics(y, y.astype(float))["roc_auc"] == 1.0
    assert abs(metrics(y, rng.random(2_000))["roc_auc"] - 0.5) < 0.05


def test_paired_auc_difference_interval_covers_the_truth() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 3_000)
    good = y + rng.normal(0, 1.0, 3_000)
    d = paired_auc_difference(y, good, good + rng.normal(0, 0.01, 3_000), n_boot=100)
    assert d["ci_low"] <= 0 <= d["ci_high"]
    d = paired_auc_difference(y, good, rng.random(3_000), n_boot=100)
    assert d["ci_low"] > 0.1


def test_paired_auc_difference_is_roc_auc_score_on_every_resample_ties_included() -> None:
    """The bootstrap counts each resample's rows instead of sorting it (O(n)): its interval
    is the one of ``roc_auc_score`` on the same resamples (tied scores, few churners)."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    for n, share in ((2_000, 0.06), (60, 0.1)):
        y = (rng.random(n) < share).astype(float)
        a, b = (y * 0.2 + rng.random(n)).round(1), rng.random(n).round(2)  # many ties
        draws = np.random.default_rng(7)
        diffs = []
        for _ in range(50):
            i = draws.integers(0, n, n)
            if 0 < y[i].sum() < n:
                diffs.append(roc_auc_score(y[i], a[i]) - roc_auc_score(y[i], b[i]))
        d = paired_auc_difference(y, a, b, n_boot=50, seed=7)
        assert d["diff"] == roc_auc_score(y, a) - roc_auc_score(y, b)
        assert np.allclose([d["ci_low"], d["ci_high"]], np.quantile(diffs, [0.025, 0.975]), rtol=0, atol=1e-12)
