"""`churn train`: run the train flow directly (no Prefect server needed) and print a summary.

``pipeline/cli.py`` calls :func:`register` once to add the command to the ``churn`` app.
"""

from __future__ import annotations

import json
import os
from datetime import date
from typing import Annotated, Any

import typer


def _env_defaults() -> None:
    # A temporary Prefect API server starts in-process: give it time on a busy machine and
    # keep it quiet; users can still override any of these.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _date(value: str | None, flag: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2026-03-01", param_hint=flag) from None


def register(app: typer.Typer) -> None:
    """Add ``train`` to the ``churn`` Typer app."""

    @app.command("train")
    def train_command(
        ctx: typer.Context,
        start: Annotated[str | None, typer.Option(help="First day of the data window (YYYY-MM-DD); default: log start.")] = None,
        end: Annotated[str | None, typer.Option(help="Last day of the data window (YYYY-MM-DD); default: log end.")] = None,
        horizon: Annotated[int, typer.Option(min=1, max=365, help="Label horizon: churn within this many days.")] = 30,
        every: Annotated[int, typer.Option(min=1, max=90, help="Days between snapshot cutoffs.")] = 7,
        candidate: Annotated[list[str] | None, typer.Option(help="Train only this candidate (repeatable); default: all in models/.")] = None,
        seed: Annotated[int | None, typer.Option(min=0, help="Random seed [default: settings seed].")] = None,
        effectiveness: Annotated[float, typer.Option(min=0, max=1, help="Campaign: share of contacted churners retained.")] = 0.30,
        top_share: Annotated[float, typer.Option(min=0.01, max=1, help="Campaign: share of users contacted, by risk.")] = 0.10,
        shap_sample: Annotated[int, typer.Option(min=50, help="Test rows explained for the SHAP plots.")] = 2_000,
        leaky: Annotated[bool, typer.Option(help="Also fit the leaky control (features after the label window).")] = True,
        register_model: Annotated[bool, typer.Option("--register/--no-register", help="Register the best candidate and run the champion gate.")] = True,
        tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI [env CHURN_MLFLOW_TRACKING_URI; default SQLite under mlruns/].")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the flow's summary as JSON.")] = False,
    ) -> None:
        """Train candidate models, compare, explain, simulate revenue, register + gate."""
        from pipeline.cli import friendly

        friendly(_run)(ctx, _date(start, "--start"), _date(end, "--end"), horizon, every, candidate, seed,
                       effectiveness, top_share, shap_sample, leaky, register_model, tracking_uri, as_json)


def _run(ctx: typer.Context, start: date | None, end: date | None, horizon: int, every: int,
         candidates: list[str] | None, seed: int | None, effectiveness: float, top_share: float, shap_sample: int,
         leaky: bool, register_model: bool, tracking_uri: str | None, as_json: bool) -> None:
    from pipeline.cli import _settings, console
    from pipeline.errors import ChurnError

    s = _settings(ctx)
    if not s.topic_dir.exists():
        raise ChurnError(f"no event log at {s.topic_dir}; run `churn simulate` first (or pass --data-dir)")
    from pipeline.mlflow_store import check_readable

    check_readable(tracking_uri or s.resolved_mlflow_uri)  # a broken MLflow db: one line before Prefect starts
    _env_defaults()
    from flows.train import train

    result = train(
        data_dir=str(s.data_dir.resolve()), topic=s.topic, start=start, end=end, horizon_days=horizon,
        every_days=every, candidates=candidates or None, seed=s.seed if seed is None else seed,
        effectiveness=effectiveness, top_share=top_share, shap_sample=shap_sample, leaky_control=leaky,
        register_model=register_model, tracking_uri=tracking_uri or s.resolved_mlflow_uri,
    )
    if as_json:
        console.print_json(json.dumps(result, default=str))
        return
    print_summary(result, console)


def print_summary(result: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    w = result["windows"]
    t = Table(title=f"candidates on the test window {w['test'][0]}..{w['test'][1]} "
                    f"(trained on {w['train'][0]}..{w['train'][1]})", title_justify="left")
    for col, just in (("model", "left"), ("role", "left"), ("val AUC", "right"), ("test AUC", "right"),
                      ("PR-AUC", "right"), ("lift@10%", "right"), ("Brier", "right"), ("fit s", "right")):
        t.add_column(col, justify=just)
    for r in result["table"]:
        star = " *" if r["name"] == result["best"] else ""
        t.add_row(r["name"] + star, r["role"], f"{r['val_roc_auc']:.3f}", f"{r['test_roc_auc']:.3f}",
                  f"{r['test_pr_auc']:.3f}", f"{r['test_lift_10']:.2f} / {r['test_lift_10_ceiling']:.1f}",
                  f"{r['test_brier']:.4f}", f"{r['fit_seconds']:.1f}" if r["role"] == "candidate" else "")
    console.print(t)
    console.print("  * best by validation ROC-AUC; lift@10% shown as value / ceiling (1 / max(base rate, 10%))")
    rv, c = result["revenue"], result["campaign"]
    console.print(
        f"revenue ({result['best']}, test window, {c['months']:g} months): {rv['baseline_churners']:,.0f} "
        f"churners, {rv['revenue_lost']:,.0f} revenue lost; contacting the top {c['top_share']:.0%} "
        f"({rv['contacted']:,.0f} users) at {c['effectiveness']:.0%} effectiveness prevents "
        f"{rv['churners_prevented']:,.0f} and saves {rv['revenue_saved']:,.0f} (net {rv['net_value']:,.0f} "
        f"after {rv['campaign_cost']:,.0f} cost); best K {rv['best_top_share']:.0%}", soft_wrap=True,
    )
    for pair, d in result.get("auc_differences", {}).items():
        console.print(f"test ROC-AUC {pair}: {d['diff']:+.4f} (95% bootstrap CI {d['ci_low']:+.4f} .. {d['ci_high']:+.4f})")
    g = result["gate"]
    if g is None:
        console.print("not registered (--no-register)")
    else:
        colour = "green" if g["decision"] == "promoted" else "yellow"
        console.print(f"registered churn v{result['registered_version']} (alias challenger): "
                      f"[bold {colour}]{g['decision']}[/] - {g['reason']}", soft_wrap=True)
    console.print(f"MLflow parent run {result['parent_run_id']} in {result['tracking_uri']}", soft_wrap=True)
