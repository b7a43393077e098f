"""The stream scores with the champion's calibration map; reasons stay the base model's."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.features.registry import FEATURE_NAMES, FEATURE_SET_VERSION
from pipeline.stream.model import export_model, load_export
from pipeline.testing.stream import tiny_model
from pipeline.training.calibrate import Calibrator
from pipeline.training.models import CalibratedModel


def test_exported_calibrated_champion_predicts_calibrated_probabilities(tmp_path) -> None:
    base = tiny_model(seed=1)
    model = CalibratedModel(base, Calibrator("platt", {"a": 0.5, "b": -1.0}))
    ref = export_model(model, "7", FEATURE_SET_VERSION, tmp_path / "models")
    scoring = load_export(ref)
    values = np.random.default_rng(0).gamma(1.5, 3.0, (300, len(FEATURE_NAMES)))
    X = pd.DataFrame(values, columns=list(FEATURE_NAMES))
    assert np.allclose(scoring.predict(values), model.predict_proba(X), atol=1e-5)
    assert not np.allclose(scoring.predict(values), base.predict_proba(X), atol=1e-3)
    exact = scoring.contributions(values, exact=True)
    assert np.allclose(exact, base.contributions(X).to_numpy()[:, :-1], atol=1e-4)  # reasons unchanged


def test_an_uncalibrated_export_scores_as_before(tmp_path) -> None:
    base = tiny_model(seed=2)
    scoring = load_export(export_model(base, "1", FEATURE_SET_VERSION, tmp_path / "models"))
    values = np.random.default_rng(1).gamma(1.5, 3.0, (50, len(FEATURE_NAMES)))
    assert np.allclose(scoring.predict(values), base.predict_proba(pd.DataFrame(values, columns=list(FEATURE_NAMES))))
