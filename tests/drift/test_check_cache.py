"""The cheap check gives exactly what the stock Evidently path gives.

``run_check`` keeps the reference's Evidently Dataset between checks (keyed by content and
model version), builds Datasets without the summary stats no lean metric reads, and runs
``ValueDrift`` without the chart data. Here every check is compared field by field (and
through the alert rule: level and reasons) with the same check on stock Evidently: the stock
``ValueDrift``, ``Dataset.from_pandas``-built datasets, nothing kept between checks."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from pipeline.drift import check
from pipeline.drift.alerts import assess_drift
from pipeline.drift.check import DriftResult, run_check
from pipeline.drift.config import DriftConfig
from pipeline.drift.window import WindowSnapshot
from tests.drift.helpers import T0

pytestmark = pytest.mark.slow  # ~20-30 s, most of it Evidently's import and the stock checks

COLS = ("cont", "count", "flag", "tier", "zero", "wild")
CFG = DriftConfig(min_rows=100)


def data(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Continuous, count, binary, 4-valued, constant, and a column with NaN / +-inf."""
    rng = np.random.default_rng(seed)
    wild = rng.normal(shift, 1, n)
    wild[rng.integers(0, n, n // 50)] = np.nan
    wild[rng.integers(0, n, n // 100)] = np.inf
    wild[rng.integers(0, n, n // 100)] = -np.inf
    return pd.DataFrame({"cont": rng.normal(shift, 1, n), "count": rng.poisson(3 + 2 * shift, n).astype(float),
                         "flag": (rng.random(n) < 0.3 + shift / 4).astype(float),
                         "tier": rng.integers(0, 4, n).astype(float), "zero": np.zeros(n), "wild": wild})


def snap(n: int, seed: int, shift: float = 0.0) -> WindowSnapshot:
    rng = np.random.default_rng(seed + 1_000)
    return WindowSnapshot(COLS, data(n, seed, shift).to_numpy(np.float64), rng.beta(2, 5 + 3 * shift, n),
                          np.arange(n, dtype=np.int64) * 1_000_000 + 1_772_323_200_000_000,
                          np.array([f"u{i}" for i in rng.integers(0, n, n)], dtype=object))


def stock(monkeypatch: pytest.MonkeyPatch, *args):
    """``run_check`` as it was: stock ValueDrift, Dataset.from_pandas, no reference kept."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    with monkeypatch.context() as m:
        m.setattr(check, "_evidently", lambda: (
            DataDefinition, lambda df, d: Dataset.from_pandas(df, data_definition=d), Report, ValueDrift))
        m.setattr(check, "_reference_dataset", lambda ref, version, d, ds: ds(ref, d))
        return run_check(*args)


def same(monkeypatch: pytest.MonkeyPatch, *args) -> DriftResult:
    lean, old = run_check(*args), stock(monkeypatch, *args)
    assert isinstance(lean, DriftResult) and isinstance(old, DriftResult)
    assert replace(lean, seconds=0.0) == replace(old, seconds=0.0)  # scores, methods, flags, counts, ...
    a, b = assess_drift(lean, CFG), assess_drift(old, CFG)
    assert (a.level, a.reasons) == (b.level, b.reasons)
    return lean


def test_cached_lean_checks_equal_stock_evidently_across_a_reference_switch(monkeypatch):
    check._REF_CACHE.clear()
    big, big_risk = data(3_000, 1), np.random.default_rng(2).beta(2, 5, 3_000)  # > 1,000 rows: distances
    small, small_risk = data(800, 3, 0.1), np.random.default_rng(4).beta(2, 4, 800)  # <= 1,000: p-values
    r1 = same(monkeypatch, snap(2_000, 11), big, big_risk, "1", CFG, T0)
    r2 = same(monkeypatch, snap(2_000, 12, shift=0.6), big, big_risk, "1", CFG, T0)
    assert len(check._REF_CACHE) == 1  # the second check reused the first one's reference
    assert r1.features[0].method.startswith("Wasserstein") and not r1.dataset_drift and r2.dataset_drift
    # a new champion: its reference (and no reference predictions), then one without some columns
    r3 = same(monkeypatch, snap(600, 13), small, small_risk, "2", CFG, T0)
    r4 = same(monkeypatch, snap(600, 14, shift=0.6), small, None, "2", CFG, T0)
    r5 = same(monkeypatch, snap(600, 15), small.drop(columns=["tier"]), small_risk, "2", CFG, T0)
    assert {f.method for f in r3.features} >= {"K-S p_value", "chi-square p_value", "Z-test p_value"}
    assert r3.prediction is not None and r4.prediction is None and r4.dataset_drift
    assert r5.skipped_columns == ("tier",) and len(r5.features) == len(COLS) - 1
    # back to the first model (an unpickled copy, as a check process receives it), other settings
    back = pickle.loads(pickle.dumps(big))
    same(monkeypatch, snap(2_000, 16, shift=0.3), back, big_risk, "1", CFG, T0)
    cfg = CFG.replace(method="psi", threshold=0.2)
    same(monkeypatch, snap(2_000, 17, shift=0.3), back, big_risk, "1", cfg, T0)


def test_reference_datasets_are_kept_by_content_and_model_version():
    check._REF_CACHE.clear()
    ref = data(1_500, 5).astype(np.float64)
    DataDefinition, Dataset, _, _ = check._evidently()
    d = DataDefinition(numerical_columns=list(ref.columns))
    first = check._reference_dataset(ref, "1", d, Dataset)
    assert check._reference_dataset(ref.copy(), "1", d, Dataset) is first  # same data: kept
    assert check._reference_dataset(pickle.loads(pickle.dumps(ref)), "1", d, Dataset) is first
    assert check._reference_dataset(ref, "2", d, Dataset) is not first  # another model version
    changed = ref.copy()
    changed.iloc[7, 0] += 1e-9
    other = check._reference_dataset(changed, "1", d, Dataset)  # other data, same version
    assert other is not first and other.as_dataframe().iloc[7, 0] == changed.iloc[7, 0]
    assert len(check._REF_CACHE) == check._REF_CACHE_SIZE  # bounded: the oldest went
    pd.testing.assert_frame_equal(first.as_dataframe(), ref)
