"""Fitting, the model contract, and behavioural tests (risk must move the right way)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import PROJECT_ROOT
from pipeline.errors import TrainingError
from pipeline.evaluation import metrics
from pipeline.training.fit import fit_candidate
from pipeline.training.specs import load_specs, parse_spec


@pytest.fixture(scope="module")
def fitted(snapshots):
    df, feats = snapshots
    tr, va = df[df.split == "train"], df[df.split == "val"]
    return {s.name: fit_candidate(s, tr, va, feats, seed=1) for s in load_specs(PROJECT_ROOT / "models")}


def test_every_candidate_gives_probabilities(fitted, snapshots) -> None:
    df, _ = snapshots
    test = df[df.split == "test"]
    for m in fitted.values():
        p = m.predict_proba(test)
        assert p.shape == (len(test),) and np.all((p >= 0) & (p <= 1))
        assert m.importance().sum() == pytest.approx(1.0)


def test_xgboost_beats_the_rule_and_stays_below_the_truth(fitted, snapshots) -> None:
    df, _ = snapshots
    test = df[df.split == "test"]
    auc = {n: metrics(test.label, m.predict_proba(test))["roc_auc"] for n, m in fitted.items()}
    truth = metrics(test.label, test.p_true)["roc_auc"]
    assert auc["rule"] < auc["xgboost"] < truth + 0.01


def test_contributions_add_up_to_the_prediction(fitted, snapshots) -> None:
    df, _ = snapshots
    rows = df[df.split == "test"].head(50)
    for m in fitted.values():
        c = m.contributions(rows)
        logit = c.sum(axis=1).to_numpy()
        assert np.allclose(1 / (1 + np.exp(-logit)), m.predict_proba(rows), atol=1e-5), m.name


def test_booster_is_sliced_to_its_best_iteration(fitted) -> None:
    m = fitted["xgboost"]
    assert m.booster.num_boosted_rounds() == m.best_iteration + 1


def test_same_seed_same_model(snapshots) -> None:
    df, feats = snapshots
    tr, va = df[df.split == "train"], df[df.split == "val"]
    spec = parse_spec({"kind": "xgboost", "params": {"n_estimators": 30, "subsample": 0.7}}, "x")
    a = fit_candidate(spec, tr, va, feats, seed=5).predict_proba(va)
    b = fit_candidate(spec, tr, va, feats, seed=5).predict_proba(va)
    assert np.array_equal(a, b)


def _perturbed(rows: pd.DataFrame, **changes: float) -> pd.DataFrame:
    out = rows.copy()
    for col, delta in changes.items():
        out[col] = out[col] + delta
    return out


@pytest.mark.parametrize("change", [
    {"payments_failed_30d": 1.0},
    {"payments_failed_30d": 2.0, "last_payment_failed": 0.0},
    {"sessions_trend_7v7": -0.5},
    {"sessions_trend_7v7": -0.5, "watch_trend_7v7": -0.5},
    {"tickets_30d": 1.0, "tickets_7d": 1.0},
])
def test_more_trouble_never_lowers_xgboost_risk(fitted, snapshots, change) -> None:
    """All else equal: more failed payments/tickets or a steeper engagement drop."""
    df, _ = snapshots
    rows = df[df.split == "test"].head(500)
    m = fitted["xgboost"]
    before, after = m.predict_proba(rows), m.predict_proba(_perturbed(rows, **change))
    assert np.all(after >= before - 1e-9)
    assert after.mean() > before.mean()


def test_logistic_baseline_moves_the_right_way_on_failed_payments(fitted, snapshots) -> None:
    df, _ = snapshots
    rows = df[df.split == "test"].head(500)
    m = fitted["logistic"]
    assert np.all(m.predict_proba(_perturbed(rows, payments_failed_30d=1.0)) >= m.predict_proba(rows))


def test_one_class_training_data_is_refused(snapshots) -> None:
    df, feats = snapshots
    tr = df[(df.split == "train") & (df.label == 0)]
    with pytest.raises(TrainingError, match="both classes"):
        fit_candidate(parse_spec({"kind": "logistic"}, "l"), tr, tr, feats)


def test_text_feature_columns_are_refused(snapshots) -> None:
    df, feats = snapshots
    tr = df[df.split == "train"].assign(plan_price="cheap")
    with pytest.raises(TrainingError, match="not numeric"):
        fit_candidate(parse_spec({"kind": "logistic"}, "l"), tr, tr, feats)
