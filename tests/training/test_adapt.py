"""Candidates adapt to the data size; monotone constraints only where meaning is known."""

from __future__ import annotations

import pytest

from pipeline.testing.training import synthetic_snapshots
from pipeline.training.adapt import adapt, monotone_for
from pipeline.training.fit import fit_candidate
from pipeline.training.specs import parse_spec

XGB = {"kind": "xgboost", "params": {"min_child_weight": 50, "max_bin": 128, "reg_lambda": 5.0},
       "monotone": {"tickets_30d": 1, "act_login_30d": -1}}


def test_size_dependent_params_scale_with_rows_and_churners() -> None:
    spec = parse_spec(XGB, "x")
    big, _ = adapt(spec, rows=150_000, positives=9_000, features=("tickets_30d",))
    small, changed = adapt(spec, rows=4_000, positives=40, features=("tickets_30d",))
    assert big.params["min_child_weight"] == pytest.approx(42.3, abs=0.1) and big.params["max_bin"] == 128
    assert small.params["min_child_weight"] < big.params["min_child_weight"] and small.params["max_bin"] < 128
    assert small.params["reg_lambda"] > 5.0 and changed["reg_lambda"] == small.params["reg_lambda"]
    lr = parse_spec({"kind": "logistic", "params": {"C": 1.0}}, "l")
    assert adapt(lr, 4_000, 40, ("tickets_30d",))[0].params["C"] == pytest.approx(0.2)
    fixed = parse_spec(XGB | {"adapt": False}, "x")
    assert dict(adapt(fixed, 4_000, 40, ("tickets_30d",))[0].params) == XGB["params"]


def test_monotone_only_on_built_in_features_or_declared_directions() -> None:
    spec = parse_spec(XGB, "x")
    feats = ("tickets_30d", "act_login_30d", "act_export_7d")
    assert monotone_for(spec, feats) == {"tickets_30d": 1}  # a source action is never constrained by the spec
    assert monotone_for(spec, feats, {"act_export_7d": 1, "tickets_30d": 0}) == {"act_export_7d": 1}
    assert monotone_for(spec, ("sessions_7d",)) == {}  # a constraint on a feature the topic lacks is dropped


def test_a_spec_constraint_on_a_feature_the_topic_lacks_does_not_fail_the_fit() -> None:
    df, feats = synthetic_snapshots(users=400, cutoffs=2, seed=2)
    spec = parse_spec(XGB | {"params": {"n_estimators": 20}}, "x")
    sized, _ = adapt(spec, len(df), int(df.label.sum()), feats)
    assert dict(sized.monotone) == {"tickets_30d": 1}  # act_login_30d is not in this topic's features
    m = fit_candidate(sized, df, None, feats, seed=0)
    p = m.predict_proba(df)
    assert p.shape == (len(df),) and 0 < p.mean() < 1
