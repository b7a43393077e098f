"""The run says how many folds and churners it had, and warns when data is short."""

from __future__ import annotations

from pipeline.testing.training import synthetic_snapshots
from pipeline.training.data import split_snapshots
from pipeline.training.report import describe_split, feature_directions


def test_short_data_degrades_to_fewer_folds_with_a_clear_warning() -> None:
    df, feats = synthetic_snapshots(users=600, cutoffs=5, seed=1)
    ds = split_snapshots(df, feats, horizon_days=7, folds=4)  # 5 weekly cutoffs: one test, room for 2 folds
    line, warnings = describe_split(ds)
    assert len(ds.cv.folds) < 4
    assert f"{len(ds.cv.folds)} rolling-origin fold(s)" in line and "churners" in line
    assert any("asked for 4" in w for w in warnings)
    assert any(f"only {len(ds.cv.folds)} fold(s)" in w and "--horizon" in w for w in warnings)


def test_enough_data_has_no_warning() -> None:
    df, feats = synthetic_snapshots(users=600, cutoffs=14, seed=1)
    ds = split_snapshots(df, feats, horizon_days=7, folds=4)
    line, warnings = describe_split(ds)
    assert len(ds.cv.folds) == 4 and warnings == []


def test_a_horizon_shorter_than_the_inactivity_that_defines_churn_is_warned() -> None:
    """An imported source whose churn is N days of silence, trained with a horizon under N:
    every positive is already silent at its cutoff, which nothing said."""
    df, feats = synthetic_snapshots(users=600, cutoffs=14, seed=1)
    ds = split_snapshots(df, feats, horizon_days=7, folds=4)
    ds.data_source = {"churn": {"definition": "inactivity", "inactive_days": 21}}
    (w,) = describe_split(ds)[1]
    assert "21 days of inactivity and the horizon 7 days" in w and "at least 14 days" in w and "--horizon 21" in w
    ds.data_source = {"churn": {"definition": "inactivity", "inactive_days": 7}}
    assert describe_split(ds)[1] == []
    ds.data_source = {"churn": {"definition": "cancel"}}
    assert describe_split(ds)[1] == []


def test_directions_come_from_the_caller_or_the_topic_feature_spec() -> None:
    df, feats = synthetic_snapshots(users=100, cutoffs=6, seed=1)
    ds = split_snapshots(df, feats, horizon_days=7, folds=2)
    from pipeline.features.spec import DEFAULT_SPEC

    # the simulator's topic: the built-in directions, limited to the dataset's features
    want = {f: d for f, d in DEFAULT_SPEC.directions.items() if f in feats}
    assert feature_directions(ds, None) == want and want
    assert feature_directions(ds, {"act_export_30d": 1}) == {"act_export_30d": 1}  # the caller's win
