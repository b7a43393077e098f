"""Calibrated churn probabilities: map a model's scores to observed churn rates.

Fitted on out-of-fold predictions (each row scored by a fold model that never saw it), so
the map corrects what the model does on new data, not on its own training rows. Three
methods, chosen by cross-fitted log loss over the folds (fit on the other folds' rows,
score the held-out fold): ``identity`` (the model is already calibrated), ``platt``
(a logistic map of the score's log-odds: two parameters, safe on few churners) and
``isotonic`` (any monotone map: needs many churners, otherwise it overfits and loses on
log loss by itself).

:meth:`Calibrator.apply` is plain numpy, so the stream's workers can use it without
scikit-learn; :meth:`Calibrator.to_dict` / :func:`from_dict` store it as JSON beside the
model.

>>> cal = fit("platt", [0.1, 0.2, 0.3, 0.8], [0, 0, 1, 1])
>>> cal.method, cal.apply([0.5]).shape
('platt', (1,))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np

Method = Literal["identity", "platt", "isotonic"]
METHODS: Final[tuple[str, ...]] = ("identity", "platt", "isotonic")
_EPS: Final = 1e-4  # calibrated probabilities stay in [1e-4, 1 - 1e-4]: never a certain churner
# Isotonic regression is a step function with as many steps as the data allows: with few
# churners its cross-fitted log loss can still win by luck and then serve coarse, jumpy
# probabilities. Below this many out-of-fold churners only identity and Platt compete.
MIN_ISOTONIC_POSITIVES: Final = 500


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Calibrator:
    method: Method = "identity"
    params: Mapping[str, Any] = field(default_factory=dict)

    def apply(self, p: Sequence[float] | np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        if self.method == "identity":
            return p
        if self.method == "platt":
            z = self.params["a"] * _logit(p) + self.params["b"]
            return np.clip(1.0 / (1.0 + np.exp(-z)), _EPS, 1 - _EPS)
        x, y = np.asarray(self.params["x"], dtype=np.float64), np.asarray(self.params["y"], dtype=np.float64)
        return np.clip(np.interp(p, x, y), _EPS, 1 - _EPS)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "params": {k: (list(map(float, v)) if isinstance(v, list | tuple | np.ndarray)
                                                       else float(v)) for k, v in self.params.items()}}


def from_dict(doc: Mapping[str, Any] | None) -> Calibrator:
    """The calibrator stored with a model; ``None`` (an older model) is the identity."""
    if not doc:
        return Calibrator()
    method = doc.get("method", "identity")
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; expected one of {list(METHODS)}")
    return Calibrator(method, dict(doc.get("params", {})))


def fit(method: Method, p: Sequence[float], y: Sequence[float]) -> Calibrator:
    """Fit one calibration ``method`` on scores ``p`` and 0/1 outcomes ``y``."""
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if method == "identity":
        return Calibrator()
    if len(np.unique(y)) < 2:
        raise ValueError(f"calibrating needs both outcomes; got {len(y)} rows and {int(y.sum())} churners")
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(p).reshape(-1, 1), y.astype(int))
        return Calibrator("platt", {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])})
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(out_of_bounds="clip", y_min=_EPS, y_max=1 - _EPS).fit(p, y)
        return Calibrator("isotonic", {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()})
    raise ValueError(f"unknown calibration method {method!r}; expected one of {list(METHODS)}")


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


@dataclass(frozen=True)
class Choice:
    calibrator: Calibrator
    fold_log_loss: dict[str, float]  # method -> mean held-out-fold log loss
    note: str = ""


def choose(p: Sequence[float], y: Sequence[float], fold: Sequence[int],
           methods: Sequence[str] = METHODS, min_isotonic_positives: int = MIN_ISOTONIC_POSITIVES) -> Choice:
    """Pick the method with the lowest cross-fitted log loss, then fit it on all rows.

    ``fold`` is each row's fold id. With one fold there is nothing to cross-fit: Platt
    (two parameters) is compared to identity on the same rows, and the note says so.
    Isotonic competes only with at least ``min_isotonic_positives`` churners.
    """
    p, y, fold = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64), np.asarray(fold)
    ids = np.unique(fold)
    scores: dict[str, float] = {}
    note = ""
    if "isotonic" in methods and y.sum() < min_isotonic_positives:
        methods = [m for m in methods if m != "isotonic"]
        note = f"{int(y.sum())} out-of-fold churners (< {min_isotonic_positives}): isotonic not considered"
    if len(ids) < 2:
        methods = [m for m in methods if m != "isotonic"]
        note = "one fold: isotonic not considered, Platt vs identity compared in-sample"
        for m in methods:
            scores[m] = log_loss(y, fit(m, p, y).apply(p))  # type: ignore[arg-type]
    else:
        for m in methods:
            losses, weights = [], []
            for k in ids:
                held = fold == k
                rest = ~held
                if len(np.unique(y[rest])) < 2:
                    continue
                losses.append(log_loss(y[held], fit(m, p[rest], y[rest]).apply(p[held])))  # type: ignore[arg-type]
                weights.append(held.sum())
            scores[m] = float(np.average(losses, weights=weights)) if losses else math.inf
    best = min(scores, key=lambda m: (scores[m], METHODS.index(m)))  # ties: the simpler method
    return Choice(fit(best, p, y), scores, note)  # type: ignore[arg-type]
