"""Which features matter to the champion: the weights drift alerts give each feature.

The importance of a feature is its share of the model's mean absolute contribution
(SHAP-style log-odds contributions, :meth:`contributions`) on the model's own reference
sample -- the rows the drift checks compare against -- so it says how much the model
leans on that feature *for the population it was trained on*. XGBoost uses Saabas
contributions on the stream (additive like TreeSHAP, ~50x cheaper; exact TreeSHAP on
the registry model); linear models their exact ``coef x standardised value``.

>>> import numpy as np
>>> normalise({"a": 3, "b": 1})
{'a': 0.75, 'b': 0.25}
>>> from_contributions(np.array([[1.0, 2.0], [-1.0, 2.0]]) * [2.0, -0.5], ("a", "b"))
{'a': 0.6666666666666666, 'b': 0.3333333333333333}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

SAMPLE_ROWS = 2_000  # contributions of this many reference rows (seeded sample) are plenty


def normalise(weights: Mapping[str, float]) -> dict[str, float]:
    """Non-negative weights scaled to sum to 1 (all zero or empty: {})."""
    clean = {str(k): max(float(v), 0.0) for k, v in weights.items() if np.isfinite(float(v))}
    total = sum(clean.values())
    return {k: v / total for k, v in clean.items()} if total > 0 else {}


def from_contributions(contribs: np.ndarray, features: Sequence[str]) -> dict[str, float]:
    """Mean |contribution| per feature (columns in ``features`` order), normalised."""
    c = np.abs(np.asarray(contribs, np.float64))
    if c.ndim != 2 or c.shape[1] != len(features) or not len(c):
        return {}
    return normalise(dict(zip(features, c.mean(axis=0).tolist(), strict=True)))


def _sample(reference: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    if len(reference) <= rows:
        return reference
    return reference.sample(rows, random_state=seed)


def scoring_model_importance(model: Any, reference: pd.DataFrame, all_features: Sequence[str],
                             rows: int = SAMPLE_ROWS, seed: int = 0) -> dict[str, float]:
    """For a stream :class:`~pipeline.stream.model.ScoringModel` (inputs: every engine
    column in ``all_features`` order; columns the reference lacks are 0, as in
    :func:`pipeline.stream.drift_hook.reference_risk`)."""
    ref = _sample(reference, rows, seed)
    values = np.zeros((len(ref), len(all_features)), np.float64)
    for j, name in enumerate(all_features):
        if name in ref.columns:
            values[:, j] = ref[name].to_numpy(np.float64)
    return from_contributions(model.contributions(values), tuple(model.features))


def churn_model_importance(model: Any, reference: pd.DataFrame, rows: int = SAMPLE_ROWS,
                           seed: int = 0) -> dict[str, float]:
    """For a registry :class:`~pipeline.training.models.ChurnModel` (``contributions``
    returns a frame with a ``bias`` column); falls back to its ``importance()``."""
    ref = _sample(reference, rows, seed)
    try:
        c = model.contributions(ref).drop(columns=["bias"], errors="ignore")
        return from_contributions(c.to_numpy(), tuple(c.columns))
    except Exception:  # noqa: BLE001 - a model without contributions still has an importance
        return normalise(model.importance().to_dict())
