"""`churn train`: run the train flow directly (no Prefect server needed) and print a summary.

``churn/cli/app.py`` calls :func:`register` once to add the command to the ``churn`` app.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any

import typer

CHANCE_AUC = 0.6  # a test ROC-AUC under this ranks churners little better than chance: said, not refused


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
        folds: Annotated[int, typer.Option(min=1, max=20, help="Rolling-origin CV folds before the test window (fewer if the data is short).")] = 4,
        test_frac: Annotated[float, typer.Option(min=0.01, max=0.9, help="Share of cutoffs held out as the test window.")] = 0.2,
        gap: Annotated[int | None, typer.Option(min=1, help="Days between training labels and evaluation cutoffs [default: the horizon].")] = None,
        warmup: Annotated[int | None, typer.Option(min=0, help="Days of activity before the first cutoff [default: 30].")] = None,
        force: Annotated[bool, typer.Option("--force", help="Gate: replace a champion of another horizon/feature spec/topic, or one that cannot be scored.")] = False,
        candidate: Annotated[list[str] | None, typer.Option(metavar="NAME", help="Train only this candidate (repeatable); default: all in models/.")] = None,
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
        from churn.cli.common import friendly

        split = {"folds": folds, "test_frac": test_frac, "gap_days": gap, "warmup_days": warmup, "force": force}
        friendly(_run)(ctx, _date(start, "--start"), _date(end, "--end"), horizon, every, candidate, seed,
                       effectiveness, top_share, shap_sample, leaky, register_model, tracking_uri, as_json, split)


def _run(ctx: typer.Context, start: date | None, end: date | None, horizon: int, every: int,
         candidates: list[str] | None, seed: int | None, effectiveness: float, top_share: float, shap_sample: int,
         leaky: bool, register_model: bool, tracking_uri: str | None, as_json: bool,
         split: dict[str, Any] | None = None) -> None:
    from churn.cli.common import console
    from churn.cli.common import settings_of as _settings
    from flows.env import local_defaults
    from pipeline.errors import ChurnError

    s = _settings(ctx)
    if not s.topic_dir.exists():
        raise ChurnError(f"no event log at {s.topic_dir}; run `churn simulate` first (or pass --data-dir)")
    from pipeline.mlflow_store import check_readable

    check_readable(tracking_uri or s.resolved_mlflow_uri)  # a broken MLflow db: one line before Prefect starts
    local_defaults()
    from flows.logs import quiet_expected_failures
    from flows.train import train

    with quiet_expected_failures():  # a ChurnError is our one `error:` line, not also Prefect's four
        result = train(
            data_dir=str(s.data_dir.resolve()), topic=s.topic, start=start, end=end, horizon_days=horizon,
            every_days=every, candidates=candidates or None, seed=s.seed if seed is None else seed,
            effectiveness=effectiveness, top_share=top_share, shap_sample=shap_sample, leaky_control=leaky,
            register_model=register_model, tracking_uri=tracking_uri or s.resolved_mlflow_uri, **(split or {}),
        )
    if as_json:
        console.print_json(json.dumps(result, default=str))
        return
    print_summary(result, console)


def print_summary(result: dict[str, Any], console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from pipeline.humanize import count, money
    from pipeline.training.report import final_line, summary_table_rows

    w = result["windows"]
    # the title on its own line: a table title wraps at the table's width
    console.print(f"candidates on the test window {w['test'][0]}..{w['test'][1]} "
                  f"(cross-validated and refitted on {w['pretest'][0]}..{w['pretest'][1]})", soft_wrap=True)
    t = Table()
    for col in ("model", "role", "CV AUC", "test AUC", "PR-AUC", "lift@10%", "ECE", "calib.", "fit"):
        t.add_column(col, justify="left" if col in ("model", "role", "calib.") else "right")
    for row in summary_table_rows(result):
        t.add_row(*row)
    console.print(t)
    console.print(f"  * chosen: {result['selection']['message']}", soft_wrap=True)
    console.print("  CV AUC: mean ± s.d. over folds; lift@10% as value / ceiling (1 / max(base rate, 10%)); "
                  "ECE on calibrated test probabilities")
    rv, c = result["revenue"], result["campaign"]
    console.print(
        f"revenue ({result['best']}, test window, {c['months']:g} months): {count(rv['baseline_churners'])} "
        f"churners, {money(rv['revenue_lost'])} revenue lost; contacting the top {c['top_share']:.0%} "
        f"({count(round(rv['contacted']))} users) at {c['effectiveness']:.0%} effectiveness prevents "
        f"{count(rv['churners_prevented'])} and saves {money(rv['revenue_saved'])} (net {money(rv['net_value'])} "
        f"after {money(rv['campaign_cost'])} cost); best K {rv['best_top_share']:.0%}", soft_wrap=True,
    )
    if "ASSUMED" in result.get("revenue_basis", ""):  # an imported source without charges: say the money is a guess
        console.print(f"  [yellow]revenue per user:[/] {escape(result['revenue_basis'])}", soft_wrap=True)
    for pair, d in result.get("auc_differences", {}).items():
        console.print(f"test ROC-AUC {pair}: {d['diff']:+.4f} (95% bootstrap CI {d['ci_low']:+.4f} .. {d['ci_high']:+.4f})")
    console.print(f"MLflow parent run {result['parent_run_id']} in {result['tracking_uri']}", soft_wrap=True)
    g = result["gate"]
    if g is not None:
        console.print(f"registered churn v{result['registered_version']} (alias challenger); gate reason: {g['reason']}",
                      soft_wrap=True, markup=False)
    best = next((r for r in result.get("table", []) if r.get("name") == result.get("best")), {})
    auc = best.get("test_roc_auc")
    if auc is not None and auc < CHANCE_AUC:
        console.print(f"[yellow]warning:[/] the chosen model's test ROC-AUC is {auc:.3f}, close to chance (0.5): its "
                      "scores barely rank churners. Check the churn definition, the horizon and how many churners "
                      "the data hold before acting on its risks.", soft_wrap=True)
    # the last line: what the gate decided, both scores and the window they were measured on
    colour = "yellow" if g is None or g["decision"] != "promoted" else "green"
    console.print(f"[bold {colour}]{escape(final_line(result))}[/]", soft_wrap=True)
