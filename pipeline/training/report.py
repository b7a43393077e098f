"""What one training run says: the split in words, MLflow params/tags, the returned summary.

Pure functions of the dataset, the evaluations and the selection, so the flow stays a list
of tasks and these texts are testable without Prefect or MLflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.humanize import duration
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
    churn = (getattr(ds, "data_source", None) or {}).get("churn", {})
    quiet, horizon = churn.get("inactive_days"), getattr(ds, "horizon_days", None)
    if churn.get("definition") == "inactivity" and quiet and horizon and horizon < quiet:
        warnings.append(f"churn is {quiet} days of inactivity and the horizon {horizon} days: a user who churns "
                        f"within the horizon has been silent for at least {quiet - horizon} days at the cutoff, so "
                        "the model mostly learns days since the last activity; --horizon "
                        f"{quiet} or more predicts churn before the silence")
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


def summary_tags(selection: Selection, version: str | None, decision: Any, window: str | None = None) -> dict[str, str]:
    """The parent run's tags, its description (``mlflow.note.content``) among them."""
    tags = {"best_candidate": selection.chosen, "selection": selection.message[:5000]}
    note = f"Chosen: {selection.message}"
    if decision is not None:
        tags |= {"registered_version": str(version), "gate.decision": decision.decision, "gate.reason": decision.reason}
        note += "\n\nRegistered as churn v{}. {}".format(version, gate_line(
            version, decision.decision, decision.reason, decision.challenger, decision.champion,
            decision.champion_version, window))
    note += ("\n\nCompare the child runs (one per candidate; oracle and leaky are references): test_roc_auc, "
             "test_pr_auc and test_lift_at_10pct are on the same held-out test window. Candidates table: "
             "Artifacts > candidates.json; all candidates on one chart: plots/test_*.png.")
    return tags | {"mlflow.note.content": note[:5000]}


def final_line(result: Mapping[str, Any]) -> str:
    """The last line of a training (CLI and run log): the gate's decision with both scores."""
    g = result.get("gate")
    if g is None:
        return f"not registered (--no-register); best candidate {result['best']}"
    return gate_line(result["registered_version"], g["decision"], g["reason"], g["challenger"], g["champion"] or None,
                     g["champion_version"], g.get("window"))


def summarize(ds: Dataset, evals: Sequence[Evaluation], selection: Selection, rev: tuple, campaign: Any,
              versus: Mapping[str, Mapping[str, float]], main: Evaluation | None, shap: Any, version: str | None,
              decision: Any, seconds: Mapping[str, float], gate_window: str | None = None,
              **ids: Any) -> dict[str, Any]:
    """The flow's JSON-able return value (``gate_window``: the rows the gate judged on, default the test window)."""
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
                                                "window": gate_window or "..".join(ds.window("test")),
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
                     duration(r["fit_seconds"]) if r["role"] == "candidate" else ""))
    return rows


# -- the gate in words: one terminal line, one registry description ---------------------
GATE_LABELS = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "lift_10": "lift@10%", "log_loss": "log loss",
               "ece": "ECE"}


def _score(metric: str, v: float | None) -> str:
    if v is None or not np.isfinite(v):
        return "-"
    return f"{v:.2f}" if metric.startswith("lift") else f"{v:.4f}"


def gate_line(version: str | None, decision: str, reason: str, challenger: Mapping[str, float],
              champion: Mapping[str, float] | None, champion_version: str | None, window: str | None) -> str:
    """The gate's decision with both scores and the window they were measured on, one line.

    >>> gate_line("3", "rejected", "lift_10 4.5 < champion 4.7", {"roc_auc": 0.81, "lift_10": 4.5},
    ...           {"roc_auc": 0.80, "lift_10": 4.71}, "2", "2026-04-20..2026-05-18")
    'gate: churn v3 REJECTED against champion v2, both scored on the test window 2026-04-20..2026-05-18: ROC-AUC 0.8100 vs 0.8000 (ok), lift@10% 4.50 vs 4.71 (worse)'
    """
    head = f"gate: churn v{version} {decision.upper()}"
    where = f"the test window {window}" if window else "the challenger's test window"
    if champion:
        parts = [f"{GATE_LABELS.get(m, m)} {_score(m, v)} vs {_score(m, champion.get(m))} "
                 f"({'ok' if m in champion and v >= champion[m] else 'worse'})" for m, v in challenger.items()]
        line = f"{head} against champion v{champion_version}, both scored on {where}: " + ", ".join(parts)
        if "tolerance" in reason:
            line += f" ({reason.rsplit('(', 1)[-1].rstrip(')')})"
        return line
    scores = ", ".join(f"{GATE_LABELS.get(m, m)} {_score(m, v)}" for m, v in challenger.items())
    return f"{head}: {reason} (challenger {scores} on {where})"


def gate_line_from_tags(version: str, tags: Mapping[str, str]) -> str | None:
    """:func:`gate_line` from what the registry recorded on a version (None: not gated yet)."""
    if "gate.decision" not in tags:
        return None

    def scores(prefix: str) -> dict[str, float]:
        return {k.removeprefix(prefix): float(v) for k, v in tags.items() if k.startswith(prefix)}

    return gate_line(version, tags["gate.decision"], tags.get("gate.reason", ""), scores("gate.challenger."),
                     scores("gate.champion.") or None, tags.get("gate.champion_version") or None,
                     tags.get("gate.window") or tags.get("test_window"))


def version_description(decision: Any, version: str, candidate: str, window: str, rows: int, churners: int,
                        at: str, policy: Any, champion_tags: Mapping[str, str] | None = None) -> str:
    """The registered version's description (Markdown): what the gate decided and why, both
    scores on the same window, and the champion's own registration-time scores on *its* window
    so the two sets of champion numbers are never confused."""
    verdict = decision.decision.upper()
    lines = [f"**{verdict}** by the champion gate at {at}: {candidate} as churn v{version}.", ""]
    rule = (f"Promoted iff at least as good as the champion on every gate metric "
            f"({', '.join(GATE_LABELS.get(m, m) for m in policy.metrics)}"
            + (f", tolerance {policy.tolerance}" if policy.tolerance else "") + ").")
    if decision.champion:
        cv = decision.champion_version
        lines += [f"Both models scored on the same rows: the test window **{window}** ({rows:,} rows, "
                  f"{churners:,} churners). {rule}", "",
                  f"| metric | challenger v{version} | champion v{cv} | difference (95% CI) |", "|---|---|---|---|"]
        for m, v in decision.challenger.items():
            d = decision.differences.get(m)
            diff = f"{d['diff']:+.4f} ({d['ci_low']:+.4f}..{d['ci_high']:+.4f})" if d else "-"
            lines.append(f"| {GATE_LABELS.get(m, m)} | {_score(m, v)} | {_score(m, decision.champion.get(m))} | {diff} |")
        lines += ["", f"Why: {decision.reason}."]
        own = {m: champion_tags.get(f"test_{m}") for m in decision.challenger} if champion_tags else {}
        if any(v is not None for v in own.values()):
            theirs = ", ".join(f"{GATE_LABELS.get(m, m)} {_score(m, float(v))}" for m, v in own.items() if v is not None)
            lines += ["", f"Champion v{cv}'s own scores when it was registered were measured on its test window "
                          f"{champion_tags.get('test_window', '(unknown)')}: {theirs}. They differ from the table "
                          "because the window differs; the gate compares the two on the same window above."]
    else:
        scores = ", ".join(f"{GATE_LABELS.get(m, m)} {_score(m, v)}" for m, v in decision.challenger.items())
        lines += [f"Why: {decision.reason}.", "", f"Challenger scores on the test window **{window}** ({rows:,} rows, "
                                                   f"{churners:,} churners): {scores}. {rule}"]
    return "\n".join(lines)


def candidate_description(ev: Evaluation, ds: Dataset, about: str, chosen: bool, selection_message: str) -> str:
    """A child run's note: what the model is, where it was measured, how it did."""
    t = ev.metrics["test"]
    w = ds.window("test")
    text = (f"{ev.name} ({ev.kind}, {ev.role}){': ' + about.strip() if about else ''}\n\n"
            f"On the held-out test window {w[0]}..{w[1]} ({int(t['n']):,} rows, {int(t['positives']):,} churners): "
            f"ROC-AUC {t['roc_auc']:.4f}, PR-AUC {t['pr_auc']:.4f}, lift at the top 10% {t['lift_10']:.2f} "
            f"(ceiling {t['lift_10_ceiling']:.2f}), ECE {t['ece']:.4f}.")
    cv = ev.metrics.get("cv", {})
    if cv.get("roc_auc") is not None and np.isfinite(cv["roc_auc"]):
        text += (f" Cross-validated ROC-AUC {cv['roc_auc']:.4f} ± {ev.metrics['cv_std'].get('roc_auc', float('nan')):.4f} "
                 f"over {len(ev.cv.folds) if ev.cv else 0} fold(s) before the test window.")
    if chosen:
        text += f"\n\n**Chosen**: {selection_message}"
    return text
