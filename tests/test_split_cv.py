"""Rolling-origin folds: no training label window reaches an evaluation cutoff.

Checked against a plain loop over days: for each fold, walk every day of every training
cutoff's label window ``(t, t + H]`` and make sure none is on or after the fold's first
evaluation cutoff; the same for the test window against every pretest cutoff.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import SplitError
from pipeline.features.timebase import DAY_US
from pipeline.split import assign, rolling_origin

JAN1 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000


def _label_days(t: int, horizon: int) -> list[int]:
    """The days a label at cutoff ``t`` looks at, one by one: (t, t + H]."""
    return [t + d * DAY_US for d in range(1, horizon + 1)]


def _reference_train(pretest: list[int], first_eval: int, gap: int) -> list[int]:
    out = []
    for t in pretest:
        if t + gap * DAY_US <= first_eval:
            out.append(t)
    return out


@settings(max_examples=200, deadline=None)
@given(
    days=st.lists(st.integers(0, 400), min_size=1, max_size=40, unique=True),
    horizon=st.integers(1, 60), folds=st.integers(1, 6), test=st.sampled_from([0.1, 0.2, 0.3]),
    extra_gap=st.integers(0, 20), min_train=st.integers(1, 3),
)
def test_no_training_label_window_reaches_an_evaluation_cutoff(days, horizon, folds, test, extra_gap, min_train):
    cut = [JAN1 + d * DAY_US for d in days]
    gap = horizon + extra_gap
    try:
        plan = rolling_origin(cut, horizon, folds=folds, test_frac=test, gap_days=gap, min_train_cutoffs=min_train)
    except SplitError as exc:
        assert "no cross-validation fold fits" in str(exc)
        return
    assert sorted([*plan.pretest, *plan.gap, *plan.test]) == sorted(cut)
    assert 1 <= len(plan.folds) <= folds and plan.test
    assert (len(plan.folds) < folds) == any("fold(s) fit" in n for n in plan.notes)
    for t in plan.pretest:  # nothing the refit learns from looks into the test window
        assert all(day < min(plan.test) or day == min(plan.test) for day in _label_days(t, horizon))
    seen_eval: list[int] = []
    for f in plan.folds:
        assert f.train and f.evaluate and set(f.evaluate) <= set(plan.pretest)
        for t in f.train:
            for day in _label_days(t, horizon):
                assert day <= min(f.evaluate), "a training label window reaches an evaluation cutoff"
        assert list(f.train) == _reference_train(list(plan.pretest), min(f.evaluate), gap)  # all usable data
        assert not set(f.evaluate) & set(seen_eval) and (not seen_eval or min(f.evaluate) > max(seen_eval))
        seen_eval += f.evaluate
    trains = [set(f.train) for f in plan.folds]
    assert all(a <= b for a, b in zip(trains, trains[1:], strict=False))  # expanding window


def test_default_simulation_has_at_least_three_folds():
    cut = [JAN1 + 30 * DAY_US + k * 7 * DAY_US for k in range(18)]  # 180 days, weekly, 30-day horizon
    plan = rolling_origin(cut, 30)
    assert len(plan.folds) == 4 and not plan.notes
    assert [len(f.train) for f in plan.folds] == sorted(len(f.train) for f in plan.folds)
    assert plan.as_temporal().cutoffs["train"] == list(plan.pretest)


def test_short_data_degrades_with_a_note_then_refuses_with_a_remedy():
    cut = [JAN1 + k * 7 * DAY_US for k in range(9)]  # 100 days at a 14-day horizon: few folds
    plan = rolling_origin(cut, 14, folds=6)
    assert 1 <= len(plan.folds) < 6 and any("asked for 6" in n for n in plan.notes)
    with pytest.raises(SplitError, match="lower --every"):
        rolling_origin(cut[:3], 14)
    with pytest.raises(SplitError, match="shorter than the horizon"):
        rolling_origin(cut, 14, gap_days=7)


def test_assign_labels_rows_pretest_as_train():
    import pandas as pd

    cut = [JAN1 + 30 * DAY_US + k * 7 * DAY_US for k in range(18)]
    plan = rolling_origin(cut, 30)
    s = assign(pd.Series(pd.to_datetime(cut, unit="us", utc=True)), plan.as_temporal())
    assert (s == "train").sum() == len(plan.pretest) and (s == "test").sum() == len(plan.test)
