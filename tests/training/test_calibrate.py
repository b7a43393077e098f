"""Calibration on synthetic scores whose true probabilities are known."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluation import expected_calibration_error
from pipeline.training.calibrate import Calibrator, choose, fit, from_dict


def _case(n: int, seed: int, distort):
    rng = np.random.default_rng(seed)
    p_true = 1 / (1 + np.exp(-rng.normal(-2.8, 1.0, n)))  # a few-percent churn rate, like ours
    y = (rng.random(n) < p_true).astype(float)
    return p_true, y, distort(p_true), rng.integers(0, 4, n)


def test_platt_recovers_true_probabilities_from_overconfident_scores() -> None:
    # scores with twice the true log-odds, shifted: a logistic map undoes it exactly
    p_true, y, s, fold = _case(40_000, 1, lambda p: 1 / (1 + np.exp(-(2 * np.log(p / (1 - p)) + 1))))
    c = choose(s, y, fold)
    assert c.calibrator.method in ("platt", "isotonic") and c.fold_log_loss["identity"] > c.fold_log_loss["platt"]
    cal = c.calibrator.apply(s)
    assert np.mean(np.abs(cal - p_true)) < 0.01  # close to the truth row by row
    assert expected_calibration_error(y, s) > 0.03 and expected_calibration_error(y, cal) < 0.01


def test_isotonic_wins_when_the_distortion_is_not_logistic() -> None:
    # a bent map that no straight line in log-odds can undo
    p_true, y, s, fold = _case(60_000, 2, lambda p: np.where(p < 0.06, p * 4, 0.24 + (p - 0.06) * 0.2))
    c = choose(s, y, fold)
    assert c.calibrator.method == "isotonic"
    assert c.fold_log_loss["isotonic"] < c.fold_log_loss["platt"] < c.fold_log_loss["identity"]
    assert np.mean(np.abs(c.calibrator.apply(s) - p_true)) < 0.02


def test_already_calibrated_scores_keep_the_identity_or_a_near_identity_map() -> None:
    p_true, y, s, fold = _case(20_000, 3, lambda p: p)
    c = choose(s, y, fold)
    assert np.mean(np.abs(c.calibrator.apply(s) - p_true)) < 0.01


def test_one_fold_compares_platt_and_identity_only_and_says_so() -> None:
    _, y, s, _ = _case(5_000, 4, lambda p: p ** 0.8)
    c = choose(s, y, np.zeros(len(y), dtype=int))
    assert set(c.fold_log_loss) == {"identity", "platt"} and "one fold" in c.note


def test_round_trip_through_json_applies_the_same_map() -> None:
    _, y, s, _ = _case(5_000, 5, lambda p: p ** 0.7)
    for m in ("platt", "isotonic"):
        cal = fit(m, s, y)
        again = from_dict(cal.to_dict())
        assert np.allclose(cal.apply(s), again.apply(s))
        assert np.all((again.apply(s) > 0) & (again.apply(s) < 1))
    assert from_dict(None) == Calibrator()
    with pytest.raises(ValueError, match="both outcomes"):
        fit("platt", s[:10], np.zeros(10))


def test_isotonic_needs_enough_churners() -> None:
    p_true, y, s, fold = _case(3_000, 6, lambda p: np.where(p < 0.06, p * 4, 0.24 + (p - 0.06) * 0.2))
    c = choose(s, y, fold)
    assert y.sum() < 500 and "isotonic" not in c.fold_log_loss and "isotonic not considered" in c.note
