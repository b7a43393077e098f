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


def test_directions_come_from_the_caller_or_the_topic_feature_spec() -> None:
    df, feats = synthetic_snapshots(users=100, cutoffs=6, seed=1)
    ds = split_snapshots(df, feats, horizon_days=7, folds=2)
    assert feature_directions(ds, None) is None
    assert feature_directions(ds, {"act_export_30d": 1}) == {"act_export_30d": 1}

    class Spec:
        directions = {"act_return_30d": 1}

    ds.feature_spec = Spec()
    assert feature_directions(ds, None) == {"act_return_30d": 1}
