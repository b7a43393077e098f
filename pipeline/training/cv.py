"""Time-series cross-validation of candidates, and a selection that knows its own noise.

Each candidate is fitted once per rolling-origin fold (:class:`pipeline.split.Fold`: all
cutoffs at least a gap before the fold's evaluation cutoffs) and scores the fold's
evaluation rows. Those out-of-fold scores give the candidate's mean fold metrics with
their spread, and the material its calibration is fitted on. XGBoost stops early on a
held-out 15 % of the fold's *users* (same cutoffs), never on the evaluation rows, so
the fold score is not tuned on itself; the refit on all pretest rows then runs the
median number of rounds the folds chose.

>>> res = cross_validate(spec, ds, seed=0)        # doctest: +SKIP
>>> select([res, other]).message                 # doctest: +SKIP
'xgboost by mean fold roc_auc 0.781 +- 0.010 over 4 folds ...'
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import TrainingError
from pipeline.evaluation import metrics
from pipeline.split import Fold
from pipeline.training.adapt import adapt
from pipeline.training.data import Dataset
from pipeline.training.fit import fit_candidate
from pipeline.training.models import ChurnModel
from pipeline.training.specs import CandidateSpec

ES_SHARE = 0.15  # share of a fit's users held out for early stopping


def _cutoff_us(cutoffs: pd.Series) -> np.ndarray:
    return cutoffs.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[us]").astype(np.int64)


def fold_masks(table: pd.DataFrame, fold: Fold) -> tuple[np.ndarray, np.ndarray]:
    """Row masks (train, evaluate) of ``fold`` over ``table`` (its ``cutoff`` column)."""
    us = _cutoff_us(table["cutoff"])
    return np.isin(us, np.asarray(fold.train, np.int64)), np.isin(us, np.asarray(fold.evaluate, np.int64))


def early_stopping_users(frame: pd.DataFrame, share: float = ES_SHARE) -> np.ndarray:
    """True for rows of the ~``share`` of users held out for early stopping (stable hash)."""
    h = pd.util.hash_pandas_object(frame["user_id"].astype(str), index=False).to_numpy()
    return (h % 10_000) < share * 10_000


@dataclass
class FoldResult:
    fold: int
    train_rows: int
    train_positives: int
    eval_rows: int
    eval_positives: int
    metrics: dict[str, float]
    best_iteration: int | None = None
    seconds: float = 0.0
    adapted: dict[str, Any] = field(default_factory=dict)


@dataclass
class CVResult:
    """One candidate's folds; ``oof`` aligned with ``ds.part('train')`` (NaN: never evaluated)."""

    name: str
    kind: str
    folds: list[FoldResult]
    oof: np.ndarray
    oof_fold: np.ndarray  # fold index per pretest row, -1 where not evaluated

    def values(self, metric: str) -> np.ndarray:
        return np.array([f.metrics.get(metric, math.nan) for f in self.folds], dtype=np.float64)

    def mean(self, metric: str) -> float:
        v = self.values(metric)
        return float(np.nanmean(v)) if np.isfinite(v).any() else math.nan

    def std(self, metric: str) -> float:
        v = self.values(metric)
        v = v[np.isfinite(v)]
        return float(np.std(v, ddof=1)) if len(v) > 1 else math.nan

    @property
    def rounds(self) -> int | None:
        """Boosting rounds for the refit: the median of the folds' early-stopped rounds."""
        its = [f.best_iteration for f in self.folds if f.best_iteration is not None]
        return int(np.median(its)) + 1 if its else None

    def table(self) -> pd.DataFrame:
        rows = []
        for f in self.folds:
            rows.append({"candidate": self.name, "fold": f.fold, "train_rows": f.train_rows,
                         "train_positives": f.train_positives, "eval_rows": f.eval_rows,
                         "eval_positives": f.eval_positives, "best_iteration": f.best_iteration,
                         "fit_seconds": f.seconds, **f.metrics})
        return pd.DataFrame(rows)


def fit_adapted(spec: CandidateSpec, train: pd.DataFrame, available: Sequence[str], seed: int,
                directions: Mapping[str, int] | None = None, rounds: int | None = None,
                features: Sequence[str] | None = None) -> tuple[ChurnModel, dict[str, Any]]:
    """Fit ``spec`` adapted to ``train``'s size. XGBoost: early stopping on held-out users,
    or exactly ``rounds`` rounds on every row when given."""
    feats = tuple(features) if features is not None else spec.resolve_features(list(available))
    y = train["label"].to_numpy()
    sized, changed = adapt(spec, len(train), int(y.sum()), feats, directions)
    if spec.kind != "xgboost":
        return fit_candidate(sized, train, None, available, seed=seed, features=feats), changed
    if rounds is not None:
        fixed = replace(sized, params=MappingProxyType(dict(sized.params) | {"n_estimators": int(rounds)}),
                        early_stopping=None)
        return fit_candidate(fixed, train, None, available, seed=seed, features=feats), changed
    held = early_stopping_users(train)
    if len(np.unique(y[held])) < 2 or len(np.unique(y[~held])) < 2:
        held = np.zeros(len(train), dtype=bool)
        held[::7] = True  # too few churners for a by-user hold-out: every 7th row
    return fit_candidate(sized, train[~held], train[held], available, seed=seed, features=feats), changed


def cross_validate(spec: CandidateSpec, ds: Dataset, seed: int = 0,
                   directions: Mapping[str, int] | None = None) -> CVResult:
    """Fit ``spec`` on every fold of ``ds.cv`` and score the fold's evaluation rows."""
    if ds.cv is None:
        raise TrainingError("the dataset has no cross-validation plan; build it with folds=k")
    pre = ds.part("train")
    oof = np.full(len(pre), np.nan)
    oof_fold = np.full(len(pre), -1, dtype=np.int64)
    results = []
    for fold in ds.cv.folds:
        tr, ev = fold_masks(pre, fold)
        train, evaluate = pre[tr], pre[ev]
        y_tr, y_ev = train["label"].to_numpy(), evaluate["label"].to_numpy()
        if len(np.unique(y_tr)) < 2 or len(y_ev) == 0:
            continue  # a fold without both classes to learn from says nothing
        t = time.perf_counter()
        model, changed = fit_adapted(spec, train, ds.features, seed, directions)
        p = model.predict_proba(evaluate)
        oof[ev], oof_fold[ev] = p, fold.index
        m = metrics(y_ev, p)
        results.append(FoldResult(fold.index, len(train), int(y_tr.sum()), len(evaluate), int(y_ev.sum()), m,
                                  getattr(model, "best_iteration", None), time.perf_counter() - t, changed))
    if not results:
        raise TrainingError(f"candidate {spec.name!r}: no fold had both classes in its training rows; "
                            "widen the data window, shorten the horizon or lower --every")
    return CVResult(spec.name, spec.kind, results, oof, oof_fold)


def scores_cv(name: str, kind: str, ds: Dataset, scores: np.ndarray, like: CVResult) -> CVResult:
    """Fold metrics of fixed scores (e.g. the oracle's) on the same evaluation rows as ``like``."""
    pre = ds.part("train")
    y = pre["label"].to_numpy()
    folds = []
    for f in like.folds:
        rows = like.oof_fold == f.fold
        folds.append(FoldResult(f.fold, 0, 0, int(rows.sum()), int(y[rows].sum()), metrics(y[rows], scores[rows])))
    oof = np.where(like.oof_fold >= 0, scores, np.nan)
    return CVResult(name, kind, folds, oof, like.oof_fold.copy())


@dataclass(frozen=True)
class Selection:
    chosen: str
    metric: str
    runner_up: str | None
    margin: float  # mean paired fold difference, chosen - runner-up
    margin_se: float  # its standard error over folds (NaN with one fold)
    within_noise: bool
    folds: int
    positives: int  # churners scored across the folds
    message: str


def select(results: Sequence[CVResult], metric: str = "roc_auc") -> Selection:
    """The candidate with the best mean fold ``metric``; warns when the lead is within noise.

    The lead counts as noise when the mean paired fold difference to the runner-up is
    under two standard errors, or when there is only one fold to judge by.
    """
    if not results:
        raise TrainingError("no candidate was cross-validated; check models/ and the `candidates` parameter")
    sign = -1.0 if metric in ("log_loss", "brier") else 1.0
    ranked = sorted(results, key=lambda r: -sign * r.mean(metric) if math.isfinite(r.mean(metric)) else math.inf)
    best = ranked[0]
    n_folds = len(best.folds)
    positives = sum(f.eval_positives for f in best.folds)
    head = (f"{best.name} by mean fold {metric} {best.mean(metric):.4f} +- {best.std(metric):.4f} over "
            f"{n_folds} fold(s) ({positives:,} churners scored)")
    if len(ranked) == 1:
        return Selection(best.name, metric, None, math.nan, math.nan, n_folds < 2, n_folds, positives,
                         head + "; the only candidate")
    second = ranked[1]
    common = sorted({f.fold for f in best.folds} & {f.fold for f in second.folds})
    a = {f.fold: f.metrics.get(metric, math.nan) for f in best.folds}
    b = {f.fold: f.metrics.get(metric, math.nan) for f in second.folds}
    d = np.array([sign * (a[k] - b[k]) for k in common], dtype=np.float64)
    d = d[np.isfinite(d)]
    margin = float(d.mean()) if len(d) else math.nan
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
    noisy = not (len(d) > 1 and margin > 2 * se)
    msg = f"{head}; runner-up {second.name} {second.mean(metric):.4f}, paired difference {margin:+.4f}"
    msg += f" (s.e. {se:.4f})" if math.isfinite(se) else " (one fold: no spread)"
    if noisy:
        msg += (" - WITHIN THE NOISE: the choice could flip on other data; more days, more users or a shorter "
                "--every give more folds and churners")
    return Selection(best.name, metric, second.name, margin, se, noisy, n_folds, positives, msg)
