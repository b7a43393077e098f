"""The gate after a drift episode compares on post-onset labelled rows only, and refuses
to decide on too few of them (issue 18)."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest

from pipeline.training import gate


def test_post_onset_rows_keeps_cutoffs_from_the_onset_on():
    cut = pd.to_datetime(["2026-07-01"] * 300 + ["2026-07-10"] * 300, utc=True)
    y = np.r_[np.zeros(280), np.ones(20), np.zeros(285), np.ones(15)]
    mask = gate.post_onset_rows(cut, "2026-07-05", y)
    assert mask.sum() == 300 and not mask[:300].any()
    assert gate.post_onset_rows(cut, None, y).all()


def test_too_little_post_onset_data_is_refused_with_the_counts_and_the_remedy():
    cut = pd.to_datetime(["2026-07-01"] * 300 + ["2026-07-10"] * 50, utc=True)
    with pytest.raises(ValueError, match=r"from 2026-07-05 on: the test window has 50 row\(s\) with 0 churner\(s\).*"
                                         r"retrain later"):
        gate.post_onset_rows(cut, "2026-07-05", np.zeros(350))


def test_doctests():
    assert doctest.testmod(gate).failed == 0
