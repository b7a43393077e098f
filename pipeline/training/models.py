"""Fitted churn models behind one small contract: probabilities, contributions, importance.

``predict_proba(X)`` returns P(churn within the horizon) for each row of ``X`` (a frame
holding at least the model's ``features``); ``contributions(X)`` returns per-feature
log-odds contributions plus a ``bias`` column that add up to the model's logit, so the
same "top reasons" code serves XGBoost (exact TreeSHAP) and linear models.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from pipeline.errors import TrainingError


@runtime_checkable
class ChurnModel(Protocol):
    name: str
    kind: str
    features: tuple[str, ...]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray: ...

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame: ...

    def importance(self) -> pd.Series: ...


def matrix(X: pd.DataFrame, features: tuple[str, ...]) -> pd.DataFrame:
    """The model's columns as float32, in order; a clear error for missing or text columns."""
    missing = [f for f in features if f not in X.columns]
    if missing:
        raise TrainingError(f"input lacks feature column(s) {missing}; was it built by another feature set?")
    out = X.loc[:, list(features)]
    bad = [c for c in features if not (pd.api.types.is_numeric_dtype(out[c]) or pd.api.types.is_bool_dtype(out[c]))]
    if bad:
        raise TrainingError(f"feature column(s) {bad} are not numeric; encode them in the feature engine")
    return out.astype(np.float32)


class XGBoostModel:
    """A native booster, already sliced to its best iteration (so SHAP matches predict)."""

    kind = "xgboost"

    def __init__(self, name: str, booster: xgb.Booster, features: tuple[str, ...], best_iteration: int,
                 history: dict[str, list[float]] | None = None) -> None:
        self.name, self.booster, self.features = name, booster, tuple(features)
        self.best_iteration = best_iteration
        self.history = history or {}

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(matrix(X, self.features)), dtype=np.float64)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        dm = xgb.DMatrix(matrix(X, self.features), feature_names=list(self.features))
        c = self.booster.predict(dm, pred_contribs=True)
        return pd.DataFrame(c, columns=[*self.features, "bias"], index=X.index)

    def importance(self) -> pd.Series:
        gain = self.booster.get_score(importance_type="total_gain")
        s = pd.Series({f: float(gain.get(f, 0.0)) for f in self.features})
        total = s.sum()
        return (s / total if total > 0 else s).sort_values(ascending=False)


class SklearnModel:
    """An sklearn pipeline ending in a logistic regression (the baseline and the rule)."""

    def __init__(self, name: str, kind: str, pipeline: Pipeline, features: tuple[str, ...]) -> None:
        self.name, self.kind, self.pipeline, self.features = name, kind, pipeline, tuple(features)

    @property
    def _lr(self) -> LogisticRegression:
        return self.pipeline[-1]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict_proba(matrix(X, self.features))[:, 1].astype(np.float64)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        z = self.pipeline[:-1].transform(matrix(X, self.features))
        c = np.asarray(z) * self._lr.coef_[0]
        out = pd.DataFrame(c, columns=list(self.features), index=X.index)
        out["bias"] = float(self._lr.intercept_[0])
        return out

    def importance(self) -> pd.Series:
        # |coefficient| on standardised inputs: the log-odds change per standard deviation.
        s = pd.Series(np.abs(self._lr.coef_[0]), index=list(self.features))
        total = s.sum()
        return (s / total if total > 0 else s).sort_values(ascending=False)


class CalibratedModel:
    """A fitted model whose probabilities go through a calibration map.

    ``predict_proba`` is calibrated; ``contributions`` stay the base model's log-odds
    contributions (the calibration map is monotone, so the reasons' ranking and signs are
    the base model's; they add up to the base logit, not to the calibrated one).
    ``base`` is the fitted model underneath (what gets serialised natively).
    """

    def __init__(self, base: ChurnModel, calibrator: Any) -> None:
        self.base, self.calibrator = base, calibrator

    @property
    def name(self) -> str:
        return self.base.name

    @name.setter
    def name(self, value: str) -> None:
        self.base.name = value

    @property
    def kind(self) -> str:
        return self.base.kind

    @property
    def features(self) -> tuple[str, ...]:
        return self.base.features

    def raw_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.base.predict_proba(X)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.calibrator.apply(self.base.predict_proba(X))

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        return self.base.contributions(X)

    def importance(self) -> pd.Series:
        return self.base.importance()

    def __getattr__(self, item: str) -> Any:  # best_iteration, booster, pipeline, history
        if item == "base":
            raise AttributeError(item)
        return getattr(self.base, item)


def unwrap(model: Any) -> tuple[Any, Any]:
    """(the natively serialisable model, its calibrator or None)."""
    if isinstance(model, CalibratedModel):
        return model.base, model.calibrator
    return model, None
