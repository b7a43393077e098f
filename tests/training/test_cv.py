"""Cross-validated selection picks the truly better model, and says when it cannot tell."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.testing.training import synthetic_snapshots
from pipeline.training.cv import cross_validate, fold_masks, select
from pipeline.training.data import split_snapshots
from pipeline.training.specs import parse_spec


@pytest.fixture(scope="module")
def ds():
    df, feats = synthetic_snapshots(users=1_200, cutoffs=12, seed=5)
    return split_snapshots(df, feats, horizon_days=7, folds=4, test_frac=0.2)


def test_folds_cover_pretest_rows_once_and_train_strictly_earlier(ds) -> None:
    pre = ds.part("train")
    assert len(ds.cv.folds) == 4 and not ds.cv.notes
    seen = np.zeros(len(pre), dtype=int)
    for f in ds.cv.folds:
        tr, ev = fold_masks(pre, f)
        assert tr.any() and ev.any() and not (tr & ev).any()
        assert pre["cutoff"][tr].max() + np.timedelta64(7, "D") <= pre["cutoff"][ev].min()
        seen += ev
    assert seen.max() == 1


def test_cv_picks_the_model_that_knows_the_truth_over_a_one_feature_rule(ds) -> None:
    logistic = cross_validate(parse_spec({"kind": "logistic"}, "logistic"), ds, seed=0)
    rule = cross_validate(parse_spec({"kind": "rule", "features": ["days_since_last_session"]}, "rule"), ds, seed=0)
    sel = select([rule, logistic])
    assert sel.chosen == "logistic" and sel.runner_up == "rule" and not sel.within_noise
    assert sel.folds == 4 and sel.positives == sum(f.eval_positives for f in logistic.folds)
    assert logistic.mean("roc_auc") > rule.mean("roc_auc") and np.isfinite(logistic.std("roc_auc"))
    # out-of-fold scores exist exactly for the evaluated rows
    assert np.isfinite(logistic.oof[logistic.oof_fold >= 0]).all() and np.isnan(logistic.oof[logistic.oof_fold < 0]).all()


def test_two_near_identical_candidates_are_flagged_as_within_the_noise(ds) -> None:
    a = cross_validate(parse_spec({"kind": "logistic", "params": {"C": 1.0}}, "a"), ds, seed=0)
    b = cross_validate(parse_spec({"kind": "logistic", "params": {"C": 0.9}}, "b"), ds, seed=0)
    sel = select([a, b])
    assert sel.within_noise and "WITHIN THE NOISE" in sel.message


def test_xgboost_folds_stop_early_and_give_refit_rounds(ds) -> None:
    spec = parse_spec({"kind": "xgboost", "params": {"n_estimators": 300, "learning_rate": 0.1, "max_depth": 3},
                       "early_stopping": {"rounds": 20, "metric": "logloss"}}, "xgboost")
    res = cross_validate(spec, ds, seed=0)
    assert all(f.best_iteration is not None for f in res.folds) and 1 <= res.rounds <= 300
    assert all("min_child_weight" in f.adapted for f in res.folds)  # sized to each fold


def test_cv_picks_trees_when_the_truth_is_an_interaction_a_linear_model_cannot_see() -> None:
    df, feats = synthetic_snapshots(users=1_500, cutoffs=10, seed=9)
    rng = np.random.default_rng(9)
    xor = (df["sessions_trend_7v7"] > 0) ^ (df["tenure_days"] > 160)
    p = 1 / (1 + np.exp(-(-3.0 + 2.2 * xor)))
    df["label"] = (rng.random(len(df)) < p).astype(np.int8)
    ds = split_snapshots(df, feats, horizon_days=7, folds=4)
    xgb = cross_validate(parse_spec({"kind": "xgboost", "params": {"n_estimators": 300, "learning_rate": 0.1,
                                                                    "max_depth": 3},
                                     "early_stopping": {"rounds": 20}}, "xgboost"), ds, seed=0)
    lin = cross_validate(parse_spec({"kind": "logistic"}, "logistic"), ds, seed=0)
    sel = select([lin, xgb])
    assert sel.chosen == "xgboost" and not sel.within_noise and sel.margin > 0.05
