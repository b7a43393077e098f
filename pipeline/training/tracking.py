"""MLflow run layout of one training: a parent run, one child run per candidate/reference.

Every child run logs the same metric names (``test_roc_auc``, ``test_lift_at_10pct``,
``cv_roc_auc``, ... see :func:`metric_name`), a description (the run's note), the rows it
was trained and tested on as MLflow dataset inputs, and the same plot paths
(``plots/test_roc.png``, ...), so MLflow's compare view lines the candidates up side by
side. The parent run holds the candidates table (``candidates.json``, MLflow's table
artifact), the overlay charts (candidates, oracle, leaky control on one set of axes), the
revenue simulation and the gate decision, with counts and money rounded.

Runs are addressed by id (``start_run(run_id=...)``), never through a run left active
between calls, so the calls may come from different Prefect task threads.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.evaluation import calibration_table, gains_table
from pipeline.explain import markdown_table
from pipeline.training import plots

Curve = tuple[np.ndarray, np.ndarray]
PLOTS = {"roc": plots.roc, "pr": plots.pr, "calibration": plots.calibration, "gains": plots.gains}
# metric names as MLflow shows them: what was measured, not an internal abbreviation
RENAMED = {"n": "rows", "positives": "churners", "lift_5": "lift_at_5pct", "lift_10": "lift_at_10pct",
           "lift_20": "lift_at_20pct", "precision_10": "precision_at_10pct", "recall_10": "recall_at_10pct",
           "lift_10_ceiling": "lift_at_10pct_ceiling", "eval_positives": "eval_churners"}
HEADLINE = ("test_roc_auc", "test_pr_auc", "test_lift_at_10pct", "test_log_loss", "test_brier", "test_ece",
            "cv_roc_auc", "cv_roc_auc_std", "fit_seconds")
COUNTS = {"rows", "churners", "train_rows", "eval_churners", "best_iteration", "cv_folds", "cv_positives"}


def metric_name(name: str) -> str:
    """``lift_10`` -> ``lift_at_10pct``, ``n`` -> ``rows`` (other names unchanged)."""
    return RENAMED.get(name, name)


def rounded(name: str, value: float) -> float:
    """Counts as whole numbers, money to the cent, seconds to 0.01 s, scores to 6 decimals
    (no ``278.09999999999997`` in the UI)."""
    v = float(value)
    if name in COUNTS or name.endswith(("_rows", "_churners", "_users", "_contacted", "_prevented")):
        return float(round(v))
    if any(w in name for w in ("revenue", "cost", "net_value", "saved")):
        return round(v, 2)
    if name.endswith("seconds"):
        return round(v, 2)
    return round(v, 6)


def clean_metrics(values: Mapping[str, float]) -> dict[str, float]:
    """Finite values only, each rounded for its kind (:func:`rounded`)."""
    return {k: rounded(k, v) for k, v in values.items() if v is not None and np.isfinite(v)}


def start_parent(experiment_id: str, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str],
                 description: str | None = None) -> str:
    import mlflow

    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=dict(tags),
                          description=description) as run:
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
    description: str | None = None,
    datasets: Sequence[DatasetInput] = (),
) -> str:
    """One child run: params, ``<split>_<metric>`` metrics, per-split plots and tables.

    Run metrics are the headline ones (``HEADLINE``); all of them, and the rest, are in
    ``tables/metrics.csv``. ``folds`` (one row per cross-validation fold) is ``tables/cv_folds.csv``;
    ``description`` is the run's note; ``datasets`` are logged as the run's inputs.
    """
    import mlflow

    with mlflow.start_run(experiment_id=experiment_id, run_name=name, parent_run_id=parent_run_id,
                          nested=True, tags={"candidate": name, **(tags or {})}, description=description) as run:
        mlflow.log_params({k: _param(v) for k, v in params.items()})
        named = {_split_metric(split, k): v for split, m in metrics.items() for k, v in m.items()}
        named |= dict(extra_metrics or {})
        # Only the headline metrics are run metrics, test_roc_auc first: MLflow's compare view
        # plots the first metric it was given and lists them all alphabetically in a short
        # box, so a few clear rows answer "which model is better". Every other number (lift at
        # 5/20 %, rows, churners, fold metrics, timings) is in tables/metrics.csv.
        mlflow.log_metrics(clean_metrics({k: named[k] for k in HEADLINE if k in named}))
        mlflow.log_text(pd.DataFrame({"metric": list(clean_metrics(named)), "value": list(clean_metrics(named).values())})
                        .to_csv(index=False), "tables/metrics.csv")
        for d in datasets:
            log_dataset(d)
        for split, (y, p) in curves.items():
            tables = {"calibration": calibration_table(y, p), "gains": gains_table(y, p)}  # once: chart and CSV
            for kind, build in PLOTS.items():
                given = {"tables": {name: tables[kind]}} if kind in tables else {}
                mlflow.log_figure(build({name: (y, p)}, title=f"{name}: {kind} ({split})", **given),
                                  f"plots/{split}_{kind}.png")
            for kind, table in tables.items():
                mlflow.log_text(table.to_csv(index=False), f"tables/{split}_{kind}.csv")
        if folds is not None and not folds.empty:
            mlflow.log_text(folds.rename(columns=metric_name).to_csv(index=False), "tables/cv_folds.csv")
        if importance is not None:
            mlflow.log_figure(plots.importance(importance, title=f"{name}: feature importance"), "plots/importance.png")
            mlflow.log_text(importance.rename("importance").to_frame().to_csv(), "tables/importance.csv")
        return run.info.run_id


def _split_metric(split: str, k: str) -> str:
    if split == "cv_std":  # the spread beside its mean: cv_roc_auc, cv_roc_auc_std
        return f"cv_{metric_name(k)}_std"
    return f"{split}_{metric_name(k)}"


@dataclass(frozen=True)
class DatasetInput:
    """Rows a run used, logged as an MLflow dataset input (``context``: training / test)."""

    frame: pd.DataFrame  # features and the label column
    context: str
    window: tuple[str, str]
    label: str = "label"

    @property
    def churners(self) -> int:
        return int(self.frame[self.label].sum())

    def tags(self) -> dict[str, str]:
        return {"window": f"{self.window[0]}..{self.window[1]}", "rows": str(len(self.frame)),
                "churners": str(self.churners)}


def log_dataset(d: DatasetInput) -> None:
    """``mlflow.log_input`` of ``d`` into the active run: name says the window, tags the sizes."""
    import mlflow
    from mlflow.data.code_dataset_source import CodeDatasetSource

    name = f"churn snapshots {d.window[0]}..{d.window[1]} ({d.context})"
    source = CodeDatasetSource({"built_by": "pipeline.training.data.build_dataset (replay of the event log)",
                                "cutoffs": f"{d.window[0]}..{d.window[1]}"})
    mlflow.log_input(mlflow_dataset(d.frame, source, d.label, name), context=d.context, tags=d.tags())


def mlflow_dataset(frame: pd.DataFrame, source: Any, targets: str, name: str) -> Any:
    """``frame`` as an MLflow pandas dataset, with the schema and digest computed column-wise.

    Float columns: the schema then matches the model's signature (no int/NaN hint). It is
    the schema ``mlflow.data.from_pandas`` would infer (``double``; ``required`` when the
    column has no missing value), but MLflow finds missing values with a Python loop over
    every cell (~9 s for a 140k-row frame, twice per run) and its digest maps ``type`` over
    every cell; here both take milliseconds. The digest hashes every row, not only the
    first 10,000.
    """
    from mlflow.data.digest_utils import get_normalized_md5_digest
    from mlflow.data.pandas_dataset import PandasDataset
    from mlflow.types import ColSpec, DataType, Schema

    class _Dataset(PandasDataset):
        def __init__(self, df: pd.DataFrame, schema: Schema, **kw: Any) -> None:
            self._given_schema = schema
            super().__init__(df, **kw)

        @property
        def schema(self) -> Schema:  # type: ignore[override]
            return self._given_schema

    frame = frame.astype("float64")
    schema = Schema([ColSpec(DataType.double, str(c), required=not bool(frame[c].isna().any()))
                     for c in frame.columns])
    digest = get_normalized_md5_digest([pd.util.hash_pandas_object(frame).to_numpy(), np.int64(len(frame)),
                                        *(str(c).encode() for c in frame.columns)])
    return _Dataset(frame, schema, source=source, targets=targets, name=name, digest=digest)


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
    """Parent-run artifacts: the candidates table, overlay charts, extra tables/metrics."""
    import mlflow

    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics(clean_metrics(metrics))
        if tags:
            mlflow.set_tags(dict(tags))
        mlflow.log_table(candidates_table(table), "candidates.json")
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


def candidates_table(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison table as MLflow shows it: headline columns first, MLflow's metric names,
    scores to 4 decimals, seconds to 0.1 s."""
    t = table.rename(columns={c: "test_" + metric_name(c.removeprefix("test_")) for c in table.columns
                              if c.startswith("test_")})
    first = ["name", "role", "kind", "test_roc_auc", "test_pr_auc", "test_lift_at_10pct", "test_ece", "cv_roc_auc",
             "cv_roc_auc_std", "calibration"]
    t = t[[c for c in first if c in t.columns] + [c for c in t.columns if c not in first]]
    for c in t.columns:
        if pd.api.types.is_float_dtype(t[c]):
            t[c] = t[c].round(1 if c.endswith("seconds") else 4)
    return t.astype(object).where(t.notna(), None)


def end_run(run_id: str, status: str = "FINISHED") -> None:
    from mlflow import MlflowClient

    MlflowClient().set_terminated(run_id, status)
