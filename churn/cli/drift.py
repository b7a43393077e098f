"""`churn drift`: the latest drift check as a table (``--json``: as JSON), or with
``--report`` the path of the newest full HTML report.

``churn/cli/app.py`` calls :func:`register` once to add the command to the ``churn`` app.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    """Add ``drift`` to the ``churn`` Typer app."""

    @app.command("drift")
    def drift_command(
        ctx: typer.Context,
        report: Annotated[bool, typer.Option("--report", help="Print the path of the newest full HTML report.")] = False,
        runs: Annotated[int, typer.Option(min=1, max=1000, help="Also list this many recent checks.")] = 10,
        as_json: Annotated[bool, typer.Option("--json", help="Print the latest check as JSON.")] = False,
    ) -> None:
        """Show the latest drift check of the stream against the champion's reference."""
        from churn.cli.common import friendly

        friendly(_run)(ctx, report, runs, as_json)


def _run(ctx: typer.Context, report: bool, runs: int, as_json: bool) -> None:
    from churn.cli.common import console
    from churn.cli.common import settings_of as _settings
    from pipeline.drift.reports import drift_dir, latest
    from pipeline.errors import ChurnError

    s = _settings(ctx)
    if report:
        path = latest(drift_dir(s.data_dir))
        if path is None:
            raise ChurnError(f"no drift report under {drift_dir(s.data_dir)} yet; run the stream (drift checks "
                             "render a full report every CHURN_DRIFT_FULL_REPORT_EVERY checks)")
        console.print(str(path.resolve()), soft_wrap=True)
        return
    if s.store_url is None and not (s.data_dir / "churn.db").exists():
        raise ChurnError(f"no store at {s.data_dir / 'churn.db'}; run the stream first (or check --data-dir)")
    from pipeline.store import Store

    with Store.from_settings(s) as store:
        table = store.drift_runs()
        # checks that came due and gave no verdict (too few rows, ended by a stop, failed): their
        # reasons are what the user needs when there is no verdict, or none since the last one
        unrun = store.drift_runs(status=("skipped", "failed"))
        if table.empty:  # normal until the stream's warm-up has passed: a plain line, exit 0
            from pipeline.drift.config import DriftConfig

            if as_json:
                console.print_json(json.dumps(None))
            elif not unrun.empty:
                console.print(f"no drift check in {store.url} has given a verdict yet: {not_run(unrun)}",
                              soft_wrap=True, highlight=False, markup=False)  # fmt: skip
            else:
                console.print(no_checks_yet(DriftConfig.from_settings(s), store.url), soft_wrap=True,
                              highlight=False, markup=False)  # fmt: skip
            return
        last = table.iloc[-1]
        feats = store.drift_features(run_id=last.run_id)
    if as_json:
        console.print_json(json.dumps(_as_dict(last, feats), default=str))
        return
    print_latest(last, feats, table.tail(runs), console)
    since = unrun[unrun.time > last.time]
    if not since.empty:
        console.print(f"since this check: {not_run(since)}", soft_wrap=True, highlight=False, markup=False)


def not_run(runs: Any) -> str:
    """How many checks (``drift_runs`` rows, oldest first) came due without a verdict,
    and the newest one's reason."""
    r = runs.iloc[-1]
    kinds = " or ".join(sorted(set(runs.status)))
    n = f"{len(runs)} checks came due and were {kinds}" if len(runs) > 1 else f"1 check came due and was {r.status}"
    return f"{n}; the latest, {r.time:%Y-%m-%d %H:%M:%S} UTC (model v{r.model_version}, {r.source}): {r.status_reason}"


def no_checks_yet(cfg: Any, where: str) -> str:
    """Why there is no drift check yet, from the rules the stream applies (a DriftConfig):
    at start-up this is the normal state, not an error, so it must say when the first comes.

    >>> from pipeline.drift.config import DriftConfig
    >>> no_checks_yet(DriftConfig(), "sqlite:///x.db")[:71]
    'no drift checks in sqlite:///x.db yet: the first comes once a partition'
    """
    if not cfg.enabled:
        return f"no drift checks in {where}: drift checks are off (CHURN_DRIFT_ENABLED=false)"
    when = [f"every {cfg.every_rows:,} scored rows (CHURN_DRIFT_EVERY_ROWS)",
            f"{cfg.every_minutes:g} minutes (CHURN_DRIFT_EVERY_MINUTES)"]  # fmt: skip
    if cfg.per_event_day:
        when.insert(0, "at each event-time midnight")
    # pipeline.stream.drift_hook: day_snapshot reads every active user at each event-time midnight
    what = "every active user at an event-time midnight" if cfg.observe == "day_snapshot" else "the scored users"
    return (f"no drift checks in {where} yet: the first comes once a partition holds {cfg.warmup_days} days of "
            f"event time (warm-up, CHURN_DRIFT_WARMUP_DAYS) and the stream scores with a champion; each compares "
            f"{what} with the champion's reference, {' or '.join(when)}, whichever comes first")  # fmt: skip


def _as_dict(run: Any, feats: Any) -> dict[str, Any]:
    d = {k: (None if v is None or (isinstance(v, float) and v != v) else v) for k, v in run.to_dict().items()}
    for k in ("time", "window_start", "window_end"):
        d[k] = None if d.get(k) is None else d[k].isoformat()
    d["dataset_drift"] = bool(d["dataset_drift"])
    d["features"] = [{"feature": r.feature, "method": r.method, "score": r.score, "threshold": r.threshold,
                      "drifted": bool(r.drifted)} for r in feats.itertuples(index=False)]
    return d


def print_latest(run: Any, feats: Any, recent: Any, console: Any) -> None:
    from rich.table import Table

    colour = {"Healthy": "green", "Warning": "yellow", "Critical": "red"}.get(run.level, "white")
    console.print(f"[bold {colour}]{run.level}[/] - model v{run.model_version}, checked {run.time:%Y-%m-%d %H:%M:%S} UTC "
                  f"by {run.source}: {run.rows:,} rows of event time {run.window_start:%Y-%m-%d %H:%M} .. "
                  f"{run.window_end:%Y-%m-%d %H:%M} vs {run.reference_rows:,} reference rows", soft_wrap=True)
    for reason in run.reasons or []:
        console.print(f"  - {reason}", soft_wrap=True)
    pred = ("no prediction drift check" if run.prediction_score is None or run.prediction_score != run.prediction_score
            else f"prediction (risk) drift {run.prediction_score:.3f} ({run.prediction_method}, threshold "
                 f"{run.prediction_threshold:g}){' DRIFTED' if run.prediction_drift else ''}")
    console.print(f"drifted features {run.drifted_count} / {run.features} ({run.drifted_share:.0%}); dataset drift: "
                  f"{'yes' if run.dataset_drift else 'no'}; {pred}", soft_wrap=True)
    t = Table(title="features by drift score", title_justify="left")
    for col, just in (("feature", "left"), ("method", "left"), ("score", "right"), ("threshold", "right"),
                      ("drifted", "left")):
        t.add_column(col, justify=just)
    for r in feats.sort_values(["drifted", "score"], ascending=False).itertuples(index=False):
        t.add_row(r.feature, r.method, f"{r.score:.4g}", f"{r.threshold:g}", "[red]yes[/]" if r.drifted else "no")
    console.print(t)
    if len(recent) > 1:
        h = Table(title=f"last {len(recent)} checks", title_justify="left")
        for col in ("time", "model", "rows", "drifted", "risk drift", "level"):
            h.add_column(col, justify="left" if col in ("time", "level") else "right")
        for r in recent.itertuples(index=False):
            score = "" if r.prediction_score is None or r.prediction_score != r.prediction_score else f"{r.prediction_score:.3f}"
            h.add_row(f"{r.time:%Y-%m-%d %H:%M:%S}", str(r.model_version), f"{r.rows:,}",
                      f"{r.drifted_count}/{r.features}", score, r.level)
        console.print(h)
    if run.report_path:
        console.print(f"full report: {run.report_path}", soft_wrap=True)
