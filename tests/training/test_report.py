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
    from pipeline.features.spec import DEFAULT_SPEC

    # the simulator's topic: the built-in directions, limited to the dataset's features
    want = {f: d for f, d in DEFAULT_SPEC.directions.items() if f in feats}
    assert feature_directions(ds, None) == want and want
    assert feature_directions(ds, {"act_export_30d": 1}) == {"act_export_30d": 1}  # the caller's win
