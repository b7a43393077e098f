"""Fit one candidate spec on a training frame (early stopping on the validation frame).

>>> model = fit_candidate(spec, train, valid, feature_names)   # doctest: +SKIP
>>> model.predict_proba(test)                                  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import QuantileTransformer, StandardScaler

from pipeline.errors import TrainingError
from pipeline.training.models import ChurnModel, SklearnModel, XGBoostModel, matrix
from pipeline.training.specs import CandidateSpec

LABEL = "label"


def fit_candidate(
    spec: CandidateSpec,
    train: pd.DataFrame,
    valid: pd.DataFrame | None,
    available: Sequence[str],
    seed: int = 0,
    label: str = LABEL,
    features: Sequence[str] | None = None,
) -> ChurnModel:
    """Fit ``spec`` on ``train``; ``valid`` drives early stopping (xgboost) only.

    ``valid=None`` fits an xgboost spec for exactly ``n_estimators`` rounds (the refit
    after cross-validation, with the rounds the folds chose).

    ``features`` overrides the spec's feature resolution (the leaky control uses it to
    fit the same spec on other columns).
    """
    feats = tuple(features) if features is not None else spec.resolve_features(list(available))
    y = _labels(train, label, "training")
    if spec.kind == "xgboost":
        yv = None if valid is None else _labels(valid, label, "validation")
        return _fit_xgboost(spec, feats, train, y, valid, yv, seed)
    return _fit_sklearn(spec, feats, train, y, seed)


def _labels(df: pd.DataFrame, label: str, what: str) -> np.ndarray:
    if label not in df.columns:
        raise TrainingError(f"{what} frame has no {label!r} column")
    y = df[label].to_numpy()
    if len(y) == 0 or len(np.unique(y)) < 2:
        raise TrainingError(
            f"{what} set has {len(y)} rows and {int(np.sum(y)) if len(y) else 0} churners; both classes are "
            "needed - bring more users/days (`churn simulate` or `churn import`) or widen the data window"
        )
    return y.astype(np.float32)


def _fit_xgboost(spec: CandidateSpec, feats: tuple[str, ...], train: pd.DataFrame, y: np.ndarray,
                 valid: pd.DataFrame | None, yv: np.ndarray | None, seed: int) -> XGBoostModel:
    p = dict(spec.params)
    rounds = int(p.pop("n_estimators", 500))
    # One thread unless the spec asks for more (n_jobs: 0 = all cores): on a shared machine
    # OpenMP threads spin-wait for a busy core; two threads measured 1.7-22 s for a fit
    # that one thread does in 2.6 s every time.
    n_jobs = int(p.pop("n_jobs", 1)) or (os.cpu_count() or 1)
    es = spec.early_stopping if valid is not None else None
    params = {
        "objective": "binary:logistic",
        "eval_metric": [m for m in ("auc", "aucpr", "logloss") if not es or m != es.metric]
        + ([es.metric] if es else []),  # the last metric drives early stopping
        "tree_method": "hist",
        "seed": seed,
        "nthread": n_jobs,
        **p,
    }
    if spec.monotone:
        params["monotone_constraints"] = "(" + ",".join(str(spec.monotone.get(f, 0)) for f in feats) + ")"
    dtrain = xgb.DMatrix(matrix(train, feats), label=y, feature_names=list(feats))
    evals = [] if valid is None else [(xgb.DMatrix(matrix(valid, feats), label=yv, feature_names=list(feats)), "valid")]
    history: dict = {}
    booster = xgb.train(
        params, dtrain, num_boost_round=rounds, evals=evals,
        early_stopping_rounds=es.rounds if es else None, evals_result=history, verbose_eval=False,
    )
    best = booster.best_iteration if es else rounds - 1
    sliced = booster[: best + 1]  # predict and TreeSHAP must see the same trees
    sliced.set_attr(best_iteration=str(best))
    valid_hist = {k: [float(v) for v in vals] for k, vals in history.get("valid", {}).items()}
    return XGBoostModel(spec.name, sliced, feats, best, valid_hist)


def _fit_sklearn(spec: CandidateSpec, feats: tuple[str, ...], train: pd.DataFrame, y: np.ndarray,
                 seed: int) -> SklearnModel:
    p = dict(spec.params)
    scaler_kind = p.pop("scaler", "standard")
    if scaler_kind == "standard":
        scaler = StandardScaler()
    elif scaler_kind == "quantile":
        scaler = QuantileTransformer(output_distribution="normal", n_quantiles=200, random_state=seed)
    else:
        raise TrainingError(f"candidate {spec.name!r}: scaler must be standard or quantile, got {scaler_kind!r}")
    if spec.kind == "rule":
        p = {"C": 1e6}  # one feature, (almost) unregularised: a monotone map of the raw rule
    lr = LogisticRegression(max_iter=int(p.pop("max_iter", 1000)), random_state=seed, **p)
    pipe = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)), ("scale", scaler), ("lr", lr)])
    pipe.fit(matrix(train, feats), y.astype(int))
    return SklearnModel(spec.name, spec.kind, pipe, feats)
