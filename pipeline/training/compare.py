"""Evaluate candidates and references: mean fold scores, calibrated test scores, one table.

An :class:`Evaluation` holds what the flow reports about one model: its metrics over the
cross-validation folds (``cv``: mean, ``cv_std``: spread), its metrics on the held-out
test window (``test``, on the *calibrated* probabilities that get served), the expected
calibration error before and after calibration, and the fitted model.

>>> ev = refit_and_calibrate(spec, ds, cv_result, seed=0)   # doctest: +SKIP
>>> comparison_table([ev, ...])                             # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipeline.evaluation import expected_calibration_error, metrics
from pipeline.training.calibrate import Choice, choose
from pipeline.training.cv import CVResult, fit_adapted
from pipeline.training.data import Dataset
from pipeline.training.models import CalibratedModel, ChurnModel
from pipeline.training.specs import CandidateSpec

Role = Literal["candidate", "reference"]
PRICE_FEATURE = "plan_price"
CV_METRICS = ("roc_auc", "pr_auc", "log_loss", "lift_10")


@dataclass
class Evaluation:
    name: str
    role: Role
    kind: str
    test_scores: np.ndarray  # calibrated where a calibration was fitted
    metrics: dict[str, dict[str, float]]  # "cv" / "cv_std" / "test" -> metric -> value
    model: ChurnModel | None = None
    fit_seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    cv: CVResult | None = None
    calibration: Choice | None = None
    raw_test_scores: np.ndarray | None = None


def _cv_metrics(cv: CVResult | None) -> tuple[dict[str, float], dict[str, float]]:
    if cv is None:
        return {}, {}
    return {m: cv.mean(m) for m in CV_METRICS}, {m: cv.std(m) for m in CV_METRICS}


def evaluate_scores(name: str, role: Role, ds: Dataset, test_scores: np.ndarray, kind: str = "reference",
                    cv: CVResult | None = None, raw_test_scores: np.ndarray | None = None,
                    **info: Any) -> Evaluation:
    """Test metrics of fixed scores (plus ECE), with fold metrics from ``cv`` if given."""
    y = ds.part("test")["label"].to_numpy()
    test = metrics(y, test_scores) | {"ece": expected_calibration_error(y, test_scores)}
    if raw_test_scores is not None:
        test["ece_uncalibrated"] = expected_calibration_error(y, raw_test_scores)
    mean, std = _cv_metrics(cv)
    return Evaluation(name, role, kind, np.asarray(test_scores), {"cv": mean, "cv_std": std, "test": test},
                      info=info, cv=cv, raw_test_scores=raw_test_scores)


def refit_and_calibrate(spec: CandidateSpec, ds: Dataset, cv: CVResult, seed: int = 0,
                        directions: Mapping[str, int] | None = None) -> Evaluation:
    """Refit ``spec`` on every pretest row, calibrate on its out-of-fold scores, score the test window.

    The calibration method (identity / Platt / isotonic) is the one with the lowest
    cross-fitted log loss over the folds; the refit XGBoost runs the folds' median rounds.
    """
    pre = ds.part("train")
    t = time.perf_counter()
    base, changed = fit_adapted(spec, pre, ds.features, seed, directions, rounds=cv.rounds)
    secs = time.perf_counter() - t
    seen = cv.oof_fold >= 0
    choice = choose(cv.oof[seen], pre["label"].to_numpy()[seen], cv.oof_fold[seen])
    model = CalibratedModel(base, choice.calibrator)
    test = ds.part("test")
    t = time.perf_counter()
    raw = base.predict_proba(test)
    info = {"features": len(base.features), "predict_seconds": time.perf_counter() - t,
            "calibration": choice.calibrator.method, "adapted": changed}
    if cv.rounds is not None:
        info["best_iteration"] = cv.rounds - 1
    ev = evaluate_scores(spec.name, "candidate", ds, choice.calibrator.apply(raw), kind=spec.kind, cv=cv,
                         raw_test_scores=raw, **info)
    ev.model, ev.fit_seconds, ev.calibration = model, secs, choice
    return ev


def fit_reference(name: str, spec: CandidateSpec, ds: Dataset, frame: pd.DataFrame, seed: int = 0) -> Evaluation:
    """Fit ``spec`` on other columns of the same rows (the leaky control); test metrics only."""
    src = frame.assign(label=ds.table["label"].to_numpy(), split=ds.table["split"].to_numpy(),
                       user_id=ds.table["user_id"].to_numpy())
    t = time.perf_counter()
    model, _ = fit_adapted(spec, src[src["split"] == "train"], list(frame.columns), seed,
                           features=list(frame.columns))
    secs = time.perf_counter() - t
    model.name = name
    ev = evaluate_scores(name, "reference", ds, model.predict_proba(src[src["split"] == "test"]), kind=spec.kind,
                         features=len(frame.columns))
    ev.model, ev.fit_seconds = model, secs
    return ev


TABLE_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_5", "lift_10", "lift_20", "precision_10",
                 "recall_10")


def comparison_table(evals: Sequence[Evaluation]) -> pd.DataFrame:
    """One row per candidate/reference: mean +- spread over folds, test metrics, calibration."""
    rows = []
    for e in evals:
        row: dict[str, Any] = {"name": e.name, "role": e.role, "kind": e.kind,
                               "cv_roc_auc": e.metrics["cv"].get("roc_auc", np.nan),
                               "cv_roc_auc_std": e.metrics["cv_std"].get("roc_auc", np.nan),
                               "cv_folds": len(e.cv.folds) if e.cv is not None else 0}
        row |= {f"test_{m}": e.metrics["test"].get(m, np.nan) for m in TABLE_METRICS}
        row["test_ece_uncalibrated"] = e.metrics["test"].get("ece_uncalibrated", np.nan)
        row["test_lift_10_ceiling"] = e.metrics["test"]["lift_10_ceiling"]
        row["test_base_rate"] = e.metrics["test"]["base_rate"]
        row["calibration"] = e.info.get("calibration", "")
        row["fit_seconds"] = e.fit_seconds + (sum(f.seconds for f in e.cv.folds) if e.cv is not None else 0.0)
        row |= {k: v for k, v in e.info.items() if k in ("features", "best_iteration")}
        rows.append(row)
    return pd.DataFrame(rows)


def cv_table(evals: Sequence[Evaluation]) -> pd.DataFrame:
    """Every fold of every model: sizes, churners, metrics (the CV table logged to MLflow)."""
    parts = [e.cv.table().assign(role=e.role) for e in evals if e.cv is not None]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def monthly_revenue(frame: pd.DataFrame, default: float) -> tuple[np.ndarray, str]:
    """Monthly revenue per row: the plan price feature, else a flat ``default``."""
    if PRICE_FEATURE in frame.columns:
        rev = frame[PRICE_FEATURE].to_numpy(dtype=np.float64)
        return np.where(rev > 0, rev, default), f"feature {PRICE_FEATURE} (default {default} where unknown)"
    return np.full(len(frame), float(default)), f"flat {default} per user (no {PRICE_FEATURE} feature)"
