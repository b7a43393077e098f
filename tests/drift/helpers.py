"""Shared helpers for the drift tests: synthetic frames and a fake check."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from pipeline.drift.check import DriftResult, FeatureDrift, Skipped, prepare

T0 = datetime(2026, 3, 1, tzinfo=UTC)
COLS = ("a", "b", "c", "d", "e")


def frame(n: int, seed: int, shift: float = 0.0, cols: tuple[str, ...] = COLS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, len(cols))), columns=list(cols))
    if shift:
        df.iloc[:, : len(cols) // 2 + 1] += shift  # a majority of columns moves
    return df


def fake_check(snap, reference, reference_risk, model_version, cfg, at, active=None, report_path=None):
    """Like ``run_check`` without Evidently: a column drifts when its mean moved > 0.5."""
    prep = prepare(snap, reference, model_version, cfg, at, active)
    if isinstance(prep, Skipped):
        return prep
    current, risk, cols, skipped = prep
    feats = tuple(FeatureDrift(c, "mean shift", abs(current[c].mean() - reference[c].mean()), 0.5,
                               abs(current[c].mean() - reference[c].mean()) >= 0.5) for c in cols)
    n = sum(f.drifted for f in feats)
    pred = None
    if reference_risk is not None:
        d = abs(float(np.mean(risk)) - float(np.mean(reference_risk)))
        pred = FeatureDrift("risk", "mean shift", d, 0.1, d >= 0.1)
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text("<html>fake</html>")
    return DriftResult(at, snap.start, snap.end, model_version, len(current), len(reference), n, n / len(feats),
                       n / len(feats) >= cfg.drift_share, pred, feats, 0.0, tuple(skipped),
                       None if report_path is None else str(report_path))
