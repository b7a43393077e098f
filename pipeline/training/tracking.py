"""MLflow run layout of one training: a parent run, one child run per candidate/reference.

Every child run logs the same metric names (``valid_roc_auc``, ``test_lift_10``, ...)
and the same plot paths (``plots/test_roc.png``, ...), so MLflow's compare view lines
the candidates up side by side. The parent run holds the comparison table and the
overlay charts (candidates, oracle, leaky control on one set of axes), the revenue
simulation and the gate decision.

Runs are addressed by id (``start_run(run_id=...)``), never through a run left active
between calls, so the calls may come from different Prefect task threads.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.evaluation import calibration_table, gains_table
from pipeline.explain import markdown_table
from pipeline.training import plots

Curve = tuple[np.ndarray, np.ndarray]
PLOTS = {"roc": plots.roc, "pr": plots.pr, "calibration": plots.calibration, "gains": plots.gains}


def start_parent(experiment_id: str, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
    import mlflow

    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=dict(tags)) as run:
        mlflow.log_params({k: _param(v) for k, v in params.items()})
        return run.info.run_id


def _param(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v, default=str)
    return s[:6000]


def log_candidate(
    experiment_id: str,
    parent_run_id: str,
    name: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, float]],
    curves: Mapping[str, Curve],
    importance: pd.Series | None = None,
    tags: Mapping[str, str] | None = None,
    extra_metrics: Mapping[str, float] | None = None,
    folds: pd.DataFrame | None = None,
) -> str:
    """One child run: params, ``<split>_<metric>`` metrics, per-split plots and tables.

    ``folds`` (one row per cross-validation fold) is logged as ``fold_<metric>`` series
    (step = fold index, so MLflow charts them) and as ``tables/cv_folds.csv``.
    """
    import mlflow

    with mlflow.start_run(experiment_id=experiment_id, run_name=name, parent_run_id=parent_run_id,
                          nested=True, tags={"candidate": name, **(tags or {})}) as run:
        mlflow.log_params({k: _param(v) for k, v in params.items()})
        mlflow.log_metrics({f"{split}_{k}": float(v) for split, m in metrics.items() for k, v in m.items()
                            if v is not None and np.isfinite(v)} | dict(extra_metrics or {}))
        for split, (y, p) in curves.items():
            for kind, build in PLOTS.items():
                mlflow.log_figure(build({name: (y, p)}, title=f"{name}: {kind} ({split})"), f"plots/{split}_{kind}.png")
            mlflow.log_text(calibration_table(y, p).to_csv(index=False), f"tables/{split}_calibration.csv")
            mlflow.log_text(gains_table(y, p).to_csv(index=False), f"tables/{split}_gains.csv")
        if folds is not None and not folds.empty:
            for _, row in folds.iterrows():
                for k in ("roc_auc", "pr_auc", "log_loss", "lift_10", "eval_positives", "train_rows"):
                    if k in row and row[k] is not None and np.isfinite(float(row[k])):
                        mlflow.log_metric(f"fold_{k}", float(row[k]), step=int(row["fold"]))
            mlflow.log_text(folds.to_csv(index=False), "tables/cv_folds.csv")
        if importance is not None:
            mlflow.log_figure(plots.importance(importance, title=f"{name}: feature importance"), "plots/importance.png")
            mlflow.log_text(importance.rename("importance").to_frame().to_csv(), "tables/importance.csv")
        return run.info.run_id


def log_artifacts(run_id: str, local_dir: Path, artifact_path: str) -> None:
    import mlflow

    with mlflow.start_run(run_id=run_id):
        mlflow.log_artifacts(str(local_dir), artifact_path)


def log_summary(
    run_id: str,
    table: pd.DataFrame,
    curves: Mapping[str, Curve],
    metrics: Mapping[str, float],
    tables: Mapping[str, pd.DataFrame] | None = None,
    figures: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    text: Mapping[str, str] | None = None,
) -> None:
    """Parent-run artifacts: the comparison table, overlay charts, extra tables/metrics."""
    import mlflow

    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)})
        if tags:
            mlflow.set_tags(dict(tags))
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp)
            table.to_csv(p / "comparison.csv", index=False)
            (p / "comparison.md").write_text(markdown_table(table) + "\n")
            for name, df in (tables or {}).items():
                df.to_csv(p / f"{name}.csv", index=False)
            mlflow.log_artifacts(tmp, "summary")
        for kind, build in PLOTS.items():
            mlflow.log_figure(build(curves, title=f"all candidates: {kind} (test)"), f"plots/test_{kind}.png")
        for name, fig in (figures or {}).items():
            mlflow.log_figure(fig, f"plots/{name}.png")
        for name, body in (text or {}).items():
            mlflow.log_text(body, name)


def end_run(run_id: str, status: str = "FINISHED") -> None:
    from mlflow import MlflowClient

    MlflowClient().set_terminated(run_id, status)
