"""Score candidates and references on the validation and test windows and compare them.

>>> ev = evaluate_scores("oracle", "reference", ds, val_scores, test_scores)   # doctest: +SKIP
>>> comparison_table([ev, ...])                                             # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipeline.errors import TrainingError
from pipeline.evaluation import metrics
from pipeline.training.data import Dataset
from pipeline.training.models import ChurnModel

Role = Literal["candidate", "reference"]
PRICE_FEATURE = "plan_price"
# Lower is better for these; every other metric is "higher is better".
LOWER_IS_BETTER = frozenset({"log_loss", "brier"})


@dataclass
class Evaluation:
    name: str
    role: Role
    kind: str
    val_scores: np.ndarray
    test_scores: np.ndarray
    metrics: dict[str, dict[str, float]]  # "val"/"test" -> metric -> value
    model: ChurnModel | None = None
    fit_seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


def evaluate_scores(name: str, role: Role, ds: Dataset, val_scores: np.ndarray, test_scores: np.ndarray,
                    kind: str = "reference", **info: Any) -> Evaluation:
    val, test = ds.part("val"), ds.part("test")
    return Evaluation(
        name, role, kind, np.asarray(val_scores), np.asarray(test_scores),
        {"val": metrics(val["label"], val_scores), "test": metrics(test["label"], test_scores)}, info=info,
    )


def evaluate_model(model: ChurnModel, ds: Dataset, role: Role = "candidate", fit_seconds: float = 0.0,
                   frame: pd.DataFrame | None = None) -> Evaluation:
    """Score ``model`` on ds's val and test parts (``frame``: other columns, same rows)."""
    src = ds.table if frame is None else frame
    mask = ds.table["split"]
    t = time.perf_counter()
    val = model.predict_proba(src[(mask == "val").to_numpy()])
    test = model.predict_proba(src[(mask == "test").to_numpy()])
    info = {"features": len(model.features), "predict_seconds": time.perf_counter() - t}
    if hasattr(model, "best_iteration"):
        info["best_iteration"] = int(model.best_iteration)
    ev = evaluate_scores(model.name, role, ds, val, test, kind=model.kind, **info)
    ev.model, ev.fit_seconds = model, fit_seconds
    return ev


def select_best(evals: Sequence[Evaluation], metric: str = "roc_auc") -> Evaluation:
    """The candidate (references excluded) with the best validation ``metric``."""
    cands = [e for e in evals if e.role == "candidate"]
    if not cands:
        raise TrainingError("no candidate was trained; check models/ and the `candidates` parameter")
    if metric not in cands[0].metrics["val"]:
        raise TrainingError(f"unknown selection metric {metric!r}; use one of {sorted(cands[0].metrics['val'])}")
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0

    def key(e: Evaluation) -> float:
        v = e.metrics["val"][metric]
        return -math.inf if math.isnan(v) else sign * v

    return max(cands, key=key)


TABLE_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "lift_5", "lift_10", "lift_20", "precision_10",
                 "recall_10")


def comparison_table(evals: Sequence[Evaluation]) -> pd.DataFrame:
    """One row per candidate/reference: validation AUC, all test metrics, the lift ceiling."""
    rows = []
    for e in evals:
        row: dict[str, Any] = {"name": e.name, "role": e.role, "kind": e.kind,
                               "val_roc_auc": e.metrics["val"]["roc_auc"], "val_pr_auc": e.metrics["val"]["pr_auc"]}
        row |= {f"test_{m}": e.metrics["test"][m] for m in TABLE_METRICS}
        row["test_lift_10_ceiling"] = e.metrics["test"]["lift_10_ceiling"]
        row["test_base_rate"] = e.metrics["test"]["base_rate"]
        row["fit_seconds"] = e.fit_seconds
        row |= {k: v for k, v in e.info.items() if k in ("features", "best_iteration")}
        rows.append(row)
    return pd.DataFrame(rows)


def monthly_revenue(frame: pd.DataFrame, default: float) -> tuple[np.ndarray, str]:
    """Monthly revenue per row: the plan price feature, else a flat ``default``."""
    if PRICE_FEATURE in frame.columns:
        rev = frame[PRICE_FEATURE].to_numpy(dtype=np.float64)
        return np.where(rev > 0, rev, default), f"feature {PRICE_FEATURE} (default {default} where unknown)"
    return np.full(len(frame), float(default)), f"flat {default} per user (no {PRICE_FEATURE} feature)"
