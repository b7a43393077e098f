"""What one training run says: the split in words, MLflow params/tags, the returned summary.

Pure functions of the dataset, the evaluations and the selection, so the flow stays a list
of tasks and these texts are testable without Prefect or MLflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.training.compare import Evaluation, comparison_table, cv_table
from pipeline.training.cv import Selection
from pipeline.training.data import Dataset

FEW_FOLDS = 3  # below this the selection is flagged as thin


def describe_split(ds: Dataset) -> tuple[str, list[str]]:
    """One line about the split (test window, folds, churners) and the warnings it deserves."""
    rep = ds.split_report.get("parts", {})
    test = rep.get("test", {})
    warnings: list[str] = []
    line = (f"{len(ds.table):,} rows; test {test.get('first_cutoff')}..{test.get('last_cutoff')} "
            f"{test.get('rows', 0):,} rows {test.get('positives', 0):,} churners")
    if ds.cv is not None:
        pre = ds.part("train")
        line += (f"; {len(ds.cv.pretest)} pretest cutoffs {len(pre):,} rows {int(pre['label'].sum()):,} churners, "
                 f"{len(ds.cv.folds)} rolling-origin fold(s) (gap {ds.cv.gap_days} d): "
                 + ", ".join(f"#{f.index} train {len(f.train)} / eval {len(f.evaluate)} cutoffs" for f in ds.cv.folds))
        warnings += list(ds.cv.notes)
        if len(ds.cv.folds) < FEW_FOLDS:
            warnings.append(f"only {len(ds.cv.folds)} fold(s): model selection will be rough; more days of events, "
                            "a shorter --horizon or a smaller --every give more")
    return line, warnings


def feature_directions(ds: Dataset, directions: Mapping[str, int] | None) -> dict[str, int] | None:
    """Monotone directions: the caller's, else the topic feature spec's (``ds.directions``: the
    declared directions of source-defined actions, limited to the dataset's features)."""
    if directions:
        return {str(k): int(v) for k, v in directions.items()}
    found = getattr(ds, "directions", None)
    return {str(k): int(v) for k, v in found.items()} if found else None


def run_params(params: Mapping[str, Any], ds: Dataset) -> dict[str, Any]:
    out = dict(params) | {"feature_set_version": ds.feature_set_version}
    for part in ("train", "test"):
        out[f"window_{'pretest' if part == 'train' else part}"] = "..".join(ds.window(part))
        out[f"rows_{'pretest' if part == 'train' else part}"] = len(ds.part(part))
    if ds.cv is not None:
        out["cv_folds"] = len(ds.cv.folds)
        out["cv_gap_days"] = ds.cv.gap_days
    return out


def run_tags(ds: Dataset, topic: str) -> dict[str, str]:
    from pipeline.ingest.profile import source_tags

    return {"feature_set_version": ds.feature_set_version, "flow": "train", "topic": topic} | source_tags(ds)


def candidate_curves(ev: Evaluation) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Curves logged per model: test (served, calibrated) and, where fitted, the raw scores
    on test and the out-of-fold scores (the reliability curves before/after calibration)."""
    curves = {"test": (ev.info["y_test"], ev.test_scores)}
    if ev.raw_test_scores is not None and ev.calibration is not None and ev.calibration.calibrator.method != "identity":
        curves["test_uncalibrated"] = (ev.info["y_test"], ev.raw_test_scores)
    return curves


def version_tags(ev: Evaluation, ds: Dataset, parent: str, run_id: str, topic: str,
                 selection: Selection) -> dict[str, Any]:
    from pipeline import registry

    test_from, test_to = ds.window("test")
    pre = ds.part("train")
    tags: dict[str, Any] = {
        "candidate": ev.name, "kind": ev.kind, registry.FEATURE_SET_TAG: ds.feature_set_version,
        "train_run_id": parent, "candidate_run_id": run_id, registry.HORIZON_TAG: ds.horizon_days,
        registry.TOPIC_TAG: topic, "test_window": f"{test_from}..{test_to}",
        registry.BASE_RATE_TAG: f"{float(pre['label'].mean()):.6f}",
        "calibration": ev.info.get("calibration", "identity"),
        "cv.folds": len(ev.cv.folds) if ev.cv is not None else 0,
        f"cv.{selection.metric}": f"{ev.metrics['cv'].get(selection.metric, float('nan')):.6f}",
        f"cv.{selection.metric}_std": f"{ev.metrics['cv_std'].get(selection.metric, float('nan')):.6f}",
        "cv.within_noise": str(selection.within_noise).lower(),
    }
    return tags | {f"test_{m}": f"{v:.6f}" for m, v in ev.metrics["test"].items()}


def summary_metrics(rev_summary: Mapping[str, float], versus: Mapping[str, Mapping[str, float]],
                    selection: Selection, seconds: Mapping[str, float], evals: Sequence[Evaluation],
                    main: str = "xgboost") -> dict[str, float]:
    out = {f"revenue_{k}": v for k, v in rev_summary.items()}
    out |= {f"{main}_minus_{other}_test_auc_{k}": v for other, d in versus.items() for k, v in d.items()}
    out |= {f"time_{k}_seconds": v for k, v in seconds.items()}
    out |= {"cv_folds": selection.folds, "cv_positives": selection.positives,
            "selection_margin": selection.margin, "selection_within_noise": float(selection.within_noise)}
    out |= {"selection_regret_test_auc": selection_regret(evals, selection)}
    return out


def selection_regret(evals: Sequence[Evaluation], selection: Selection) -> float:
    """Test ROC-AUC of the best candidate minus the chosen one's (0 when CV chose the best)."""
    cands = {e.name: e.metrics["test"]["roc_auc"] for e in evals if e.role == "candidate"}
    return float(max(cands.values()) - cands[selection.chosen])


def summary_tags(selection: Selection, version: str | None, decision: Any) -> dict[str, str]:
    tags = {"best_candidate": selection.chosen, "selection": selection.message[:5000]}
    if decision is not None:
        tags |= {"registered_version": str(version), "gate.decision": decision.decision, "gate.reason": decision.reason}
    return tags


def summarize(ds: Dataset, evals: Sequence[Evaluation], selection: Selection, rev: tuple, campaign: Any,
              versus: Mapping[str, Mapping[str, float]], main: Evaluation | None, shap: Any, version: str | None,
              decision: Any, seconds: Mapping[str, float], **ids: Any) -> dict[str, Any]:
    """The flow's JSON-able return value."""
    rev_summary, _, rev_how = rev
    best = next(e for e in evals if e.name == selection.chosen)
    table = comparison_table(evals)
    return ids | {
        "feature_set_version": ds.feature_set_version,
        "windows": {"pretest": ds.window("train"), "test": ds.window("test")},
        "split": ds.split_report,
        "table": table.replace({np.nan: None}).to_dict(orient="records"),
        "cv_table": cv_table(evals).replace({np.nan: None}).to_dict(orient="records"),
        "best": selection.chosen,
        "selection": {"message": selection.message, "metric": selection.metric, "folds": selection.folds,
                      "positives": selection.positives, "runner_up": selection.runner_up,
                      "margin": selection.margin, "margin_se": selection.margin_se,
                      "within_noise": selection.within_noise, "regret_test_auc": selection_regret(evals, selection)},
        "calibration": {"method": best.info.get("calibration"), "fold_log_loss": dict(best.calibration.fold_log_loss)
                        if best.calibration else {}, "test_ece": best.metrics["test"]["ece"],
                        "test_ece_uncalibrated": best.metrics["test"].get("ece_uncalibrated")},
        "train_base_rate": float(ds.part("train")["label"].mean()),
        "auc_differences": {f"{main.name} - {o}": d for o, d in versus.items()} if main is not None else {},
        "revenue": rev_summary,
        "campaign": dict(campaign.__dict__),
        "revenue_basis": rev_how,
        "registered_version": version,
        "gate": None if decision is None else {"decision": decision.decision, "reason": decision.reason,
                                                "challenger": dict(decision.challenger),
                                                "champion": dict(decision.champion or {}),
                                                "champion_version": decision.champion_version,
                                                "differences": {k: dict(v) for k, v in decision.differences.items()},
                                                "forced": decision.forced},
        "shap": None if shap is None else {"rows": shap.sample_rows, "seconds": shap.seconds,
                                           "rows_per_second": shap.rows_per_second,
                                           "top_features": shap.importance["feature"].head(5).tolist()},
        "seconds": dict(seconds),
    }


def summary_table_rows(result: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """The `churn train` table as text cells, from the flow's returned summary."""

    def num(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    rows = []
    for r in result["table"]:
        star = " *" if r["name"] == result["best"] else ""
        cv = "-" if r.get("cv_roc_auc") is None else f"{r['cv_roc_auc']:.3f}±{num(r.get('cv_roc_auc_std'), '.3f')}"
        rows.append((r["name"] + star, r["role"], cv, num(r["test_roc_auc"], ".3f"), num(r["test_pr_auc"], ".3f"),
                     f"{num(r['test_lift_10'], '.2f')} / {num(r['test_lift_10_ceiling'], '.1f')}",
                     num(r.get("test_ece"), ".4f"), r.get("calibration") or "",
                     f"{r['fit_seconds']:.1f}" if r["role"] == "candidate" else ""))
    return rows
