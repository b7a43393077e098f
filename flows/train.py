"""The `train` flow: snapshots -> split -> fit candidates -> evaluate -> explain -> revenue
-> register -> gate. Thin wiring: every task calls :mod:`pipeline` functions.

Run it directly (``churn train``; Prefect starts a temporary API server in-process) or as
the served deployment ``train/weekly`` (see :mod:`flows.serve`). Parameters (data window,
horizon, candidates, seed, gate, campaign) show in the Prefect UI.

Retries: reading the log and talking to MLflow (a locked SQLite file, a tracking server
hiccup) retry; fitting and evaluating are deterministic and do not. Registering and the
gate are idempotent per training run, so a retry never adds a second version or a second
promotion.
"""

from __future__ import annotations

import getpass
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from pipeline.config import PROJECT_ROOT, load_settings

TASK: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
MLFLOW_RETRIES: dict[str, Any] = {"retries": 2, "retry_delay_seconds": [2, 10]}


def _logger() -> logging.Logger | Any:
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:  # called through .fn() outside a run
        return logging.getLogger("flows.train")


def quiet_environment() -> None:
    """Local-first defaults: no telemetry, no progress bars (users may override); expected
    errors logged as one line."""
    for k, v in {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
                 "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "true"}.items():
        os.environ.setdefault(k, v)
    from flows.logs import one_line_errors

    one_line_errors()  # a ChurnError is one line in the run log, not a traceback


@dataclass
class Timer:
    seconds: dict[str, float]

    def add(self, name: str, t0: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


# -- tasks -------------------------------------------------------------------------------
@task(name="build-snapshots", retries=1, retry_delay_seconds=5, **TASK)
def build_snapshots(data_dir: str, topic: str, horizon_days: int, every_days: int,
                    start: date | None, end: date | None):
    from pipeline.errors import TrainingError
    from pipeline.log import open_log
    from pipeline.training.data import build_dataset

    log_dir = Path(data_dir) / "log"
    if not (log_dir / topic).exists():
        raise TrainingError(f"no event log at {log_dir / topic}; run `churn simulate` (or produce events) first")
    log = open_log(log_dir, topic)
    try:
        ds = build_dataset(log, horizon_days, every_days, start, end)
    finally:
        log.close()
    from pipeline.ingest.ledger import load_profile
    from pipeline.ingest.profile import annotate_dataset

    annotate_dataset(ds, load_profile(Path(data_dir), topic))  # imported data: which features are defaults
    rep = ds.split_report["parts"]
    _logger().info("snapshots: %s rows; %s", f"{len(ds.table):,}", "; ".join(
        f"{p} {r['first_cutoff']}..{r['last_cutoff']} {r['rows']:,} rows {r['positive_rate']:.1%} churn"
        for p, r in rep.items() if p != "gap"))
    return ds


@task(name="references", retries=1, retry_delay_seconds=5, **TASK)
def references(ds, data_dir: str, topic: str, leaky: bool):
    """Oracle scores (if the simulator's hazard table exists) and leaky features."""
    from pipeline.log import open_log
    from pipeline.training.data import leaky_features, oracle_scores

    oracle = oracle_scores(ds, Path(data_dir) / "sim")
    leaky_frame = None
    if leaky:
        log = open_log(Path(data_dir) / "log", topic)
        try:
            leaky_frame = leaky_features(log, ds)
        finally:
            log.close()
    _logger().info("references: oracle %s, leaky control %s", "yes" if oracle is not None else "no (no hazard table)",
                   "yes" if leaky else "off")
    return oracle, leaky_frame


@task(name="fit", task_run_name="fit-{name}", **TASK)
def fit(name: str, spec, ds, seed: int, frame=None, features=None):
    from pipeline.training.compare import evaluate_model
    from pipeline.training.fit import fit_candidate

    src = ds.table if frame is None else frame.assign(label=ds.table["label"], split=ds.table["split"])
    t = time.perf_counter()
    model = fit_candidate(spec, src[src["split"] == "train"], src[src["split"] == "val"], ds.features, seed=seed,
                          features=features)
    secs = time.perf_counter() - t
    ev = evaluate_model(model, ds, role="candidate" if features is None else "reference", fit_seconds=secs,
                        frame=None if frame is None else src)
    _logger().info("%s: fitted in %.1f s; val ROC-AUC %.4f, test ROC-AUC %.4f, test lift@10%% %.2f", name, secs,
                   ev.metrics["val"]["roc_auc"], ev.metrics["test"]["roc_auc"], ev.metrics["test"]["lift_10"])
    return ev


@task(name="explain", **TASK)
def explain(ev, ds, out_dir: str, sample: int, seed: int):
    from pipeline.explain import write_report

    test = ds.part("test")
    rep = write_report(ev.model, test, ev.test_scores, Path(out_dir), ids=test[["user_id", "cutoff"]],
                       sample=sample, seed=seed)
    _logger().info("SHAP for %s: %d rows in %.1f s (%.0f rows/s); top features %s", ev.name, rep.sample_rows,
                   rep.seconds, rep.rows_per_second, ", ".join(rep.importance["feature"].head(3)))
    return rep


@task(name="revenue", **TASK)
def revenue(ev, ds, campaign, default_revenue: float):
    from pipeline.revenue import business_summary, sweep
    from pipeline.training.compare import monthly_revenue

    test = ds.part("test")
    rev, how = monthly_revenue(test, default_revenue)
    summary = business_summary(ev.test_scores, test["label"], rev, campaign)
    table = sweep(ev.test_scores, test["label"], rev, campaign)
    _logger().info("revenue (%s, test window): %d churners, %.0f lost over %.0f months; contacting top %.0f%% at "
                   "%.0f%% effectiveness prevents %.1f, saves %.0f, net %.0f; best K %.0f%%", ev.name,
                   summary["baseline_churners"], summary["revenue_lost"], campaign.months, campaign.top_share * 100,
                   campaign.effectiveness * 100, summary["churners_prevented"], summary["revenue_saved"],
                   summary["net_value"], summary["best_top_share"] * 100)
    return summary, table, how


@task(name="start-tracking", **MLFLOW_RETRIES, **TASK)
def start_tracking(tracking_uri: str, params: dict[str, Any], tags: dict[str, str]):
    from pipeline import registry
    from pipeline.training.tracking import start_parent

    exp = registry.configure(tracking_uri)
    run_id = start_parent(exp, f"train-{datetime.now(UTC):%Y%m%d-%H%M%S}", params, tags)
    _logger().info("MLflow: %s experiment %s, parent run %s", tracking_uri, registry.EXPERIMENT, run_id)
    return exp, run_id


@task(name="log-run", task_run_name="log-{ev.name}", **MLFLOW_RETRIES, **TASK)
def log_run(exp: str, parent: str, ev, params: dict[str, Any], shap_dir: str | None = None):
    from pipeline.training.tracking import log_artifacts, log_candidate

    imp = ev.model.importance() if ev.model is not None else None
    curves = {split: (y, s) for split, y, s in (("val", ev.info["y_val"], ev.val_scores),
                                                  ("test", ev.info["y_test"], ev.test_scores))}
    extra = {k: float(v) for k, v in ev.info.items() if k in ("fit_seconds", "predict_seconds", "best_iteration",
                                                                "shap_seconds", "shap_rows_per_second")}
    run_id = log_candidate(exp, parent, ev.name, params, ev.metrics, curves, imp,
                           tags={"role": ev.role, "kind": ev.kind}, extra_metrics=extra | {"fit_seconds": ev.fit_seconds})
    if shap_dir:
        log_artifacts(run_id, Path(shap_dir), "shap")
    return run_id


@task(name="register", **MLFLOW_RETRIES, **TASK)
def register(ev, ds, run_id: str, parent: str, seed: int):
    """Log the best candidate's model into its run and register it (once per training run)."""
    import mlflow

    from pipeline import registry

    existing = mlflow.MlflowClient().search_model_versions(
        f"name='{registry.MODEL_NAME}' and tags.train_run_id='{parent}'")
    if existing:  # a retry after a registered version: do not add another
        return str(existing[0].version)
    train = ds.part("train")
    reference = train.sample(min(5_000, len(train)), random_state=seed)
    with mlflow.start_run(run_id=run_id):
        info = registry.log_model(ev.model, train.head(5), reference, ds.registry_doc, ds.feature_set_version)
    test_from, test_to = ds.window("test")
    tags = {"candidate": ev.name, "kind": ev.kind, registry.FEATURE_SET_TAG: ds.feature_set_version,
            "train_run_id": parent, "candidate_run_id": run_id, "horizon_days": ds.horizon_days,
            "test_window": f"{test_from}..{test_to}"}
    tags |= {f"test_{m}": f"{v:.6f}" for m, v in ev.metrics["test"].items()}
    version = registry.register(info.model_uri, tags)
    _logger().info("registered %s as %s version %s (alias %s)", ev.name, registry.MODEL_NAME, version,
                   registry.CHALLENGER)
    return version


@task(name="gate", **MLFLOW_RETRIES, **TASK)
def gate(version: str, ev, ds, policy, by: str):
    import mlflow

    from pipeline import registry
    from pipeline.training.gate import GateDecision

    mv = mlflow.MlflowClient().get_model_version(registry.MODEL_NAME, version)
    if "gate.decision" in mv.tags:  # a retry after the decision was recorded
        return GateDecision(mv.tags["gate.decision"] == "promoted", mv.tags.get("gate.reason", ""),
                            {m: float(mv.tags.get(f"gate.challenger.{m}", "nan")) for m in policy.metrics})
    test = ds.part("test")
    d = registry.run_gate(version, ev.metrics["test"], test, test["label"].to_numpy(), ds.feature_set_version,
                          datetime.now(UTC), by, policy)
    _logger().info("gate: version %s %s (%s)", version, d.decision.upper(), d.reason)
    return d


# -- the flow ----------------------------------------------------------------------------
@flow(name="train", description="Train candidate churn models, compare them, explain, simulate revenue, "
      "register the best and gate it against the champion.")
def train(
    data_dir: str | None = None,
    topic: str | None = None,
    start: date | None = None,
    end: date | None = None,
    horizon_days: int = 30,
    every_days: int = 7,
    candidates: list[str] | None = None,
    seed: int = 42,
    select_by: str = "roc_auc",
    gate_metrics: tuple[str, ...] = ("roc_auc", "lift_10"),
    gate_tolerance: float = 0.0,
    effectiveness: float = 0.30,
    top_share: float = 0.10,
    cost_per_contact: float = 2.0,
    incentive_cost: float = 10.0,
    value_months: float = 6.0,
    default_monthly_revenue: float = 12.0,
    shap_sample: int = 2_000,
    leaky_control: bool = True,
    register_model: bool = True,
    tracking_uri: str | None = None,
    models_dir: str | None = None,
) -> dict[str, Any]:
    """Returns a JSON-able summary: the comparison table, revenue, registry version, gate."""
    quiet_environment()
    from pipeline.ingest.profile import source_tags
    from pipeline.revenue import Campaign
    from pipeline.training.compare import comparison_table, evaluate_scores, select_best
    from pipeline.training.data import LEAKY_SUFFIX
    from pipeline.training.gate import GatePolicy
    from pipeline.training.plots import revenue_sweep
    from pipeline.training.specs import load_specs
    from pipeline.training.tracking import end_run, log_summary

    s = load_settings(data_dir=data_dir, topic=topic)
    uri = tracking_uri or s.resolved_mlflow_uri
    specs = load_specs(Path(models_dir) if models_dir else PROJECT_ROOT / "models", candidates)
    campaign = Campaign(top_share, effectiveness, cost_per_contact, incentive_cost, value_months)
    policy = GatePolicy(tuple(gate_metrics), gate_tolerance)
    timer = Timer({})
    work = Path(tempfile.mkdtemp(prefix="churn-train-"))
    params = {"data_dir": str(s.data_dir), "topic": s.topic, "start": start, "end": end, "horizon_days": horizon_days,
              "every_days": every_days, "candidates": [sp.name for sp in specs], "seed": seed, "select_by": select_by,
              "gate_metrics": list(gate_metrics), "gate_tolerance": gate_tolerance, "campaign": campaign.__dict__}

    t = time.perf_counter()
    ds = build_snapshots(str(s.data_dir), s.topic, horizon_days, every_days, start, end)
    oracle, leaky_frame = references(ds, str(s.data_dir), s.topic, leaky_control)
    timer.add("snapshots", t)

    t = time.perf_counter()
    exp, parent = start_tracking(uri, params | {"feature_set_version": ds.feature_set_version,
                                                **{f"window_{p}": "..".join(ds.window(p)) for p in ("train", "val", "test")},
                                                **{f"rows_{p}": len(ds.part(p)) for p in ("train", "val", "test")}},
                                 {"feature_set_version": ds.feature_set_version, "flow": "train"} | source_tags(ds))
    timer.add("logging", t)
    try:
        t = time.perf_counter()
        evals = [fit(sp.name, sp, ds, seed) for sp in specs]
        if leaky_frame is not None:
            main = next((sp for sp in specs if sp.kind == "xgboost"), specs[0])
            lk = fit("leaky", main, ds, seed, frame=leaky_frame, features=list(leaky_frame.columns))
            lk.name, lk.kind, lk.role = "leaky", f"{main.kind} on features at cutoff+horizon ({LEAKY_SUFFIX})", "reference"
            lk.model.name = "leaky"
            evals.append(lk)
        if oracle is not None:
            mask = ds.table["split"].to_numpy()
            evals.append(evaluate_scores("oracle", "reference", ds, oracle[mask == "val"], oracle[mask == "test"],
                                         kind="simulator hazard"))
        timer.add("fit", t)
        for e in evals:
            e.info["y_val"], e.info["y_test"] = ds.part("val")["label"].to_numpy(), ds.part("test")["label"].to_numpy()
        best = select_best(evals, select_by)
        main_xgb = next((e for e in evals if e.role == "candidate" and e.kind == "xgboost"), None)
        t = time.perf_counter()
        versus = paired_differences(main_xgb, evals, seed) if main_xgb is not None else {}
        timer.add("evaluate", t)

        t = time.perf_counter()
        shap = explain(main_xgb, ds, str(work / "shap"), shap_sample, seed) if main_xgb is not None else None
        if shap is not None:
            main_xgb.info |= {"shap_seconds": shap.seconds, "shap_rows_per_second": shap.rows_per_second}
        timer.add("shap", t)

        t = time.perf_counter()
        rev_summary, rev_table, rev_how = revenue(best, ds, campaign, default_monthly_revenue)
        timer.add("evaluate", t)

        t = time.perf_counter()
        spec_by = {sp.name: sp for sp in specs}
        run_ids = {}
        for e in evals:
            sp = spec_by.get(e.name)
            p = {"kind": e.kind, "role": e.role, "description": sp.description if sp else "",
                 "features": list(e.model.features) if e.model is not None else "-", **(dict(sp.params) if sp else {})}
            run_ids[e.name] = log_run(exp, parent, e, p, str(shap.directory) if shap and e is main_xgb else None)

        version, decision = None, None
        if register_model:
            version = register(best, ds, run_ids[best.name], parent, seed)
            decision = gate(version, best, ds, policy, _who())
        table = comparison_table(evals)
        curves = {e.name: (e.info["y_test"], e.test_scores) for e in evals}
        gate_tags = {"best_candidate": best.name}
        if decision is not None:
            gate_tags |= {"registered_version": str(version), "gate.decision": decision.decision,
                          "gate.reason": decision.reason}
        from pipeline import registry

        history = registry.alias_history() if register_model else None
        timer.add("logging", t)
        summary_metrics = {f"revenue_{k}": v for k, v in rev_summary.items()}
        summary_metrics |= {f"{main_xgb.name}_minus_{other}_test_auc_{k}": v
                            for other, d in versus.items() for k, v in d.items()}
        summary_metrics |= {f"time_{k}_seconds": v for k, v in timer.seconds.items()}
        log_summary(parent, table, curves, summary_metrics,
                    tables={"revenue_sweep": rev_table, **({"alias_history": history} if history is not None else {})},
                    figures={"revenue_sweep": revenue_sweep(rev_table)}, tags=gate_tags,
                    text={"summary/revenue_note.txt": f"monthly revenue per user: {rev_how}\n"})
    except BaseException:
        end_run(parent, "FAILED")
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)

    return {
        "parent_run_id": parent,
        "experiment_id": exp,
        "tracking_uri": uri,
        "feature_set_version": ds.feature_set_version,
        "windows": {p: ds.window(p) for p in ("train", "val", "test")},
        "split": ds.split_report,
        "table": table.replace({np.nan: None}).to_dict(orient="records"),
        "best": best.name,
        "auc_differences": {f"{main_xgb.name} - {o}": d for o, d in versus.items()} if versus else {},
        "revenue": rev_summary,
        "campaign": dict(campaign.__dict__),
        "revenue_basis": rev_how,
        "registered_version": version,
        "gate": None if decision is None else {"decision": decision.decision, "reason": decision.reason,
                                                "challenger": dict(decision.challenger),
                                                "champion": dict(decision.champion or {}),
                                                "champion_version": decision.champion_version},
        "shap": None if shap is None else {"rows": shap.sample_rows, "seconds": shap.seconds,
                                           "rows_per_second": shap.rows_per_second,
                                           "top_features": shap.importance["feature"].head(5).tolist()},
        "seconds": timer.seconds,
    }


def paired_differences(main, evals, seed: int) -> dict[str, dict[str, float]]:
    """Test ROC-AUC of the main model minus each other model's, with bootstrap 95 % CIs."""
    from pipeline.evaluation import paired_auc_difference

    return {e.name: paired_auc_difference(main.info["y_test"], main.test_scores, e.test_scores, seed=seed)
            for e in evals if e is not main and e.role == "candidate"}


def _who() -> str:
    """Who promoted: the Prefect flow run if there is one, else the OS user."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    user = getpass.getuser()
    if ctx is not None and ctx.flow_run is not None:
        return f"{user} via prefect flow run {ctx.flow_run.name} ({ctx.flow_run.id})"
    return user
