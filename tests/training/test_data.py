"""Training data: the leaky control really is "the same features, H days later"; the oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import TrainingError
from pipeline.log import open_log
from pipeline.simulator import SimConfig, Simulator
from pipeline.simulator.history import simulate_history
from pipeline.training.data import (
    LEAKY_SUFFIX,
    build_dataset,
    from_frame,
    leaky_features,
    oracle_scores,
)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("d")
    log = open_log(root / "log", "events", num_partitions=2)
    simulate_history(Simulator(SimConfig(users=1_500, days=90, seed=11)), log, root / "sim")
    ds = build_dataset(log, horizon_days=7, every_days=7)
    yield root, log, ds
    log.close()


def test_dataset_parts_are_in_time_order_with_a_gap(small) -> None:
    _, _, ds = small
    tr, va, te = (ds.part(p)["cutoff"] for p in ("train", "val", "test"))
    assert tr.max() < va.min() and va.max() < te.min()
    assert (va.min() - tr.max()).days >= ds.horizon_days and (te.min() - va.max()).days >= ds.horizon_days
    assert set(ds.features) <= set(ds.table.columns) and "label" in ds.table


def test_leaky_features_are_the_snapshot_features_one_horizon_later(small) -> None:
    _, log, ds = small
    leaky = leaky_features(log, ds)
    assert list(leaky.columns) == [f + LEAKY_SUFFIX for f in ds.features]
    # with horizon == spacing, the features at c + H of a user still active then are that
    # user's snapshot row at the next cutoff
    t = ds.table.assign(**{c: leaky[c] for c in leaky.columns})
    later = ds.table[["user_id", "cutoff", *ds.features]].assign(cutoff=lambda d: d.cutoff - pd.Timedelta(days=7))
    both = t.merge(later, on=["user_id", "cutoff"], suffixes=("", "_next"))
    assert len(both) > 1_000
    for f in ds.features:
        assert np.allclose(both[f + LEAKY_SUFFIX], both[f + "_next"]), f


def test_oracle_needs_the_hazard_table(small, tmp_path: Path) -> None:
    root, _, ds = small
    p = oracle_scores(ds, root / "sim")
    assert p is not None and p.shape == (len(ds.table),) and np.all((p >= 0) & (p <= 1))
    y = ds.table["label"].to_numpy()
    assert p[y == 1].mean() > p[y == 0].mean()
    assert oracle_scores(ds, tmp_path) is None  # any other event log: no oracle row
    assert oracle_scores(ds, None) is None


def test_a_part_without_churners_is_refused(small) -> None:
    _, _, ds = small
    t = ds.table.copy()
    t.loc[t["split"] == "test", "label"] = 0
    with pytest.raises(TrainingError, match="test part"):
        from_frame(t, ds.features, ds.horizon_days)
    t["label"] = 0  # no churner anywhere: the cause is named (no cancel events), not only the first part
    with pytest.raises(TrainingError, match=r"no user churned within \d+ days of any cutoff \([\d,]+ snapshot rows, "
                                            r"0 churners\): the log has no cancel events .*definition: inactivity"):
        from_frame(t, ds.features, ds.horizon_days)
