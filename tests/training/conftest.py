from __future__ import annotations

import pandas as pd
import pytest

from pipeline.testing.training import split_by_cutoff, synthetic_snapshots


@pytest.fixture(scope="session")
def snapshots() -> tuple[pd.DataFrame, list[str]]:
    df, feats = synthetic_snapshots(users=1_500, cutoffs=5, seed=3)
    return split_by_cutoff(df), feats
