"""Evaluation charts as matplotlib Figures (object API: no pyplot state, no display needed).

Each builder takes ``curves``: name -> (y, p), so one call draws a single candidate (its
own MLflow run) or all candidates plus the oracle and the leaky control (the parent run).
References (names in ``REFERENCE_STYLES``) are dashed so nobody mistakes them for models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import auc, precision_recall_curve, roc_curve

from pipeline.evaluation import calibration_table, gains_table

Curves = Mapping[str, tuple[Sequence[float], Sequence[float]]]
REFERENCE_STYLES = {"oracle": ":", "leaky": "--"}


def _style(name: str) -> str:
    return REFERENCE_STYLES.get(name, "-")


def _fig(title: str) -> tuple[Figure, object]:
    fig = Figure(figsize=(6, 4.5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    return fig, ax


def roc(curves: Curves, title: str = "ROC") -> Figure:
    fig, ax = _fig(title)
    for name, (y, p) in curves.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, _style(name), label=f"{name} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def pr(curves: Curves, title: str = "Precision-recall") -> Figure:
    fig, ax = _fig(title)
    base = None
    for name, (y, p) in curves.items():
        prec, rec, _ = precision_recall_curve(y, p)
        ax.plot(rec, prec, _style(name), label=name)
        base = float(np.mean(y))
    if base is not None:
        ax.axhline(base, color="grey", lw=0.8, label=f"base rate {base:.3f}")
    ax.set(xlabel="recall", ylabel="precision")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def calibration(curves: Curves, title: str = "Calibration (10 equal-count bins)",
                tables: Mapping[str, pd.DataFrame] | None = None) -> Figure:
    """``tables``: a curve's :func:`calibration_table` by name, when the caller has it."""
    fig, ax = _fig(title)
    hi = 0.0
    for name, (y, p) in curves.items():
        t = tables[name] if tables and name in tables else calibration_table(y, p)
        ax.plot(t["mean_predicted"], t["observed_rate"], _style(name), marker="o", ms=3, label=name)
        hi = max(hi, float(t["mean_predicted"].max()), float(t["observed_rate"].max()))
    ax.plot([0, hi], [0, hi], color="grey", lw=0.8)
    ax.set(xlabel="mean predicted churn probability", ylabel="observed churn rate")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def gains(curves: Curves, title: str = "Cumulative gains and lift",
          tables: Mapping[str, pd.DataFrame] | None = None) -> Figure:
    """``tables``: a curve's :func:`gains_table` by name, when the caller has it."""
    fig = Figure(figsize=(10, 4.5), dpi=100, layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    fig.suptitle(title)
    for name, (y, p) in curves.items():
        t = tables[name] if tables and name in tables else gains_table(y, p)
        x = np.r_[0, t["share_contacted"]]
        ax1.plot(x, np.r_[0, t["share_of_churners"]], _style(name), label=name)
        ax2.plot(t["share_contacted"], t["lift"], _style(name), marker="o", ms=3, label=name)
    ax1.plot([0, 1], [0, 1], color="grey", lw=0.8)
    ax1.set(xlabel="share of users contacted (by risk)", ylabel="share of churners reached")
    ax2.axhline(1, color="grey", lw=0.8)
    ax2.set(xlabel="share of users contacted (by risk)", ylabel="lift")
    ax1.legend(fontsize=8)
    return fig


def importance(imp: pd.Series, title: str = "Feature importance", top: int = 20) -> Figure:
    s = imp.sort_values(ascending=False).head(top)[::-1]
    fig = Figure(figsize=(6, 0.3 * len(s) + 1.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.barh(s.index, s.to_numpy())
    ax.set_title(title)
    ax.set_xlabel("share of importance")
    return fig


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def revenue_sweep(table: pd.DataFrame, title: str = "Retention campaign: value by share contacted") -> Figure:
    """Net value, revenue saved and cost against the share of users contacted."""
    fig, ax = _fig(title)
    x = table["top_share"] * 100
    ax.plot(x, table["revenue_saved"], label="revenue saved")
    ax.plot(x, table["cost"], label="campaign cost")
    ax.plot(x, table["net_value"], label="net value", lw=2)
    best = table.loc[table["net_value"].idxmax()]
    ax.axvline(best["top_share"] * 100, color="grey", ls="--", lw=0.8,
               label=f"best K = {best['top_share']:.0%} (net {best['net_value']:,.0f})")
    ax.axhline(0, color="black", lw=0.5)
    ax.set(xlabel="share of users contacted, by risk (%)", ylabel="value over the horizon")
    ax.legend(fontsize=8)
    return fig
