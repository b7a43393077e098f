"""`churn features` and `churn snapshots`, added to the main app by :func:`register`.

``churn features --at 2026-03-01 [--user u0000042]`` replays the log up to that instant
(a date means its 00:00 UTC, i.e. everything up to the end of the previous day) and
shows one user's vector, or the distribution of every feature over the active users.
``churn snapshots`` builds the labelled table under ``<data-dir>/snapshots/`` and prints
the temporal split.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from churn.cli.common import console, err
from pipeline.errors import ChurnError
from pipeline.features.registry import FEATURES
from pipeline.features.spec import spec_for
from pipeline.features.timebase import DAY_US, from_us, to_us


def register(app: typer.Typer) -> None:
    """Add the ``features`` and ``snapshots`` commands to ``app`` (``ctx.obj`` = Settings)."""
    from churn.cli.common import friendly

    app.command("features")(friendly(features))
    app.command("snapshots")(friendly(snapshots))


def _parse_at(text: str) -> datetime:
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date (2026-03-01) or an ISO time", param_hint="--at") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _progress(quiet: bool, label: str) -> Progress:
    return Progress(
        TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TextColumn("records"),
        TimeElapsedColumn(), console=err, transient=True, disable=quiet,
    )


def _total_records(log: Any, partitions: list[int]) -> int:
    return sum(log.end_offset(p) - log.start_offset(p) for p in partitions)


def features(
    ctx: typer.Context,
    at: Annotated[str | None, typer.Option(help="Instant (UTC): a date = its 00:00, or ISO time [default: the last event].")] = None,
    user: Annotated[str | None, typer.Option(help="Show this user's vector instead of the summary.")] = None,
    lateness_hours: Annotated[float, typer.Option(min=0, help="Allowed lateness of out-of-order events.")] = 24.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Feature vector of a user at a time, or feature distributions over active users."""
    from churn.cli.common import open_log as _open_log
    from pipeline.features.replay import replay_partition
    from pipeline.features.state import FeatureFrame, FeatureState
    from pipeline.labels import activity_range
    from pipeline.log import partition_for

    log = _open_log(ctx.obj, create=False)
    spec = spec_for(ctx.obj.data_dir, ctx.obj.topic)  # the topic's features (declared actions included)
    try:
        last_us = activity_range(log)[1]
        t_us = to_us(_parse_at(at)) if at else last_us
        if t_us - last_us > DAY_US:  # a typo'd year reads as a log of inactive users, silently
            err.print(f"warning: --at {from_us(t_us).date()} is {(t_us - last_us) // DAY_US:,} days after the log's "
                      f"last event ({from_us(last_us).date()}): no event after that day is in these features",
                      soft_wrap=True)  # fmt: skip
        parts = [partition_for(user.encode(), log.num_partitions)] if user else list(range(log.num_partitions))
        frames: list[FeatureFrame] = []
        known: list[bool] = []

        def keep(t: int, st: FeatureState) -> None:
            frames.append(st.read(t, [user] if user else st.active_users()))
            known.append(bool(user) and st.slots([user], create=False)[0] >= 0)

        with _progress(as_json, "replaying") as bar:
            task = bar.add_task("replay", total=_total_records(log, parts))
            for p in parts:
                replay_partition(
                    log, p, FeatureState(timedelta(hours=lateness_hours), spec=spec), [t_us], keep,
                    stop_after_last_cutoff=True, progress=lambda n: bar.advance(task, n),
                )
    finally:
        log.close()
    when = from_us(t_us).isoformat()
    if user:
        if not known[0]:
            raise ChurnError(f"user {user!r} has no events up to {when} (partition {parts[0]}); check the id or --at")
        _show_user(user, parts[0], when, frames[0], as_json, spec)
    else:
        _show_summary(when, frames, as_json, spec)


def _show_user(user: str, partition: int, when: str, frame: Any, as_json: bool, spec: Any) -> None:
    values = {n: v for n, v in zip(frame.columns, frame.values[0].tolist(), strict=True) if n in spec.names}
    if as_json:
        console.print_json(json.dumps({"user_id": user, "at": when, "partition": partition, "active": bool(frame.active[0]),
                                       "feature_set_version": spec.version, "features": values}))
        return
    status = "active" if frame.active[0] else "not subscribed"
    t = Table(title=f"{user} at {when} (partition {partition}, {status})", title_justify="left")
    t.add_column("feature", style="bold")
    t.add_column("value", justify="right")
    t.add_column("meaning", style="dim")
    meaning = {f.name: f.description for f in FEATURES}
    for name, v in values.items():
        t.add_row(name, f"{v:,.3f}", meaning.get(name, "declared action (docs/import.md)"))
    console.print(t)


def _show_summary(when: str, frames: list[Any], as_json: bool, spec: Any) -> None:
    values = np.concatenate([f.values for f in frames]) if frames else np.zeros((0, len(spec.engine_columns)))
    keep = [i for i, n in enumerate(spec.engine_columns) if n in spec.names]
    values = values[:, keep]
    if not len(values):
        raise ChurnError(f"no active subscribers at {when}; pick a later --at")
    q = np.percentile(values, [10, 50, 90], axis=0)
    rows = {
        name: {"mean": float(values[:, i].mean()), "p10": float(q[0, i]), "p50": float(q[1, i]),
               "p90": float(q[2, i]), "max": float(values[:, i].max()), "zero_share": float((values[:, i] == 0).mean())}
        for i, name in enumerate(spec.names)
    }
    if as_json:
        console.print_json(json.dumps({"at": when, "active_users": len(values), "feature_set_version": spec.version, "features": rows}))
        return
    t = Table(title=f"{len(values):,} active subscribers at {when}", title_justify="left",
              caption=f"feature set {spec.version}", caption_justify="left")
    t.add_column("feature", style="bold")
    for col in ("mean", "p10", "p50", "p90", "max", "zeros"):
        t.add_column(col, justify="right")
    for name, r in rows.items():
        t.add_row(name, *(f"{r[k]:,.2f}" for k in ("mean", "p10", "p50", "p90", "max")), f"{r['zero_share']:.0%}")
    console.print(t)


def snapshots(
    ctx: typer.Context,
    horizon: Annotated[int, typer.Option(min=1, help="Label horizon in days: churn in (t, t + horizon].")] = 30,
    every: Annotated[int, typer.Option(min=1, help="Days between cutoffs.")] = 7,
    warmup: Annotated[int, typer.Option(min=0, help="Days of activity before the first cutoff.")] = 30,
    val_frac: Annotated[float, typer.Option(min=0, max=0.9, help="Share of usable cutoffs for validation.")] = 0.2,
    test_frac: Annotated[float, typer.Option(min=0.01, max=0.9, help="Share of usable cutoffs for test.")] = 0.2,
    gap: Annotated[int | None, typer.Option(min=1, help="Days between parts [default: the horizon].")] = None,
    lateness_hours: Annotated[float, typer.Option(min=0, help="Allowed lateness of out-of-order events.")] = 24.0,
    out: Annotated[Path | None, typer.Option(help="Parquet file [default: <data-dir>/snapshots/snapshots.parquet].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the split report as JSON.")] = False,
) -> None:
    """Build the labelled snapshot table (features at cutoffs + forward churn label) and split it."""
    from churn.cli.common import open_log as _open_log
    from pipeline.labels import build_snapshots, write_snapshots
    from pipeline.split import assign, report, temporal_split

    s = ctx.obj
    log = _open_log(s, create=False)
    try:
        parts = list(range(log.num_partitions))
        with _progress(as_json, "snapshots") as bar:
            task = bar.add_task("replay", total=_total_records(log, parts))
            snap = build_snapshots(
                log, horizon_days=horizon, every_days=every, warmup_days=warmup,
                lateness=timedelta(hours=lateness_hours), progress=lambda n: bar.advance(task, n),
                spec=spec_for(s.data_dir, s.topic),
            )
    finally:
        log.close()
    plan = temporal_split(snap.cutoffs, horizon, val_frac=val_frac, test_frac=test_frac, gap_days=gap)
    snap.table["split"] = assign(snap.table.cutoff, plan)
    rep = report(snap.table, plan) | {
        "rows": len(snap.table), "records_replayed": snap.records,
        "invalid_records": sum(x.invalid for x in snap.stats), "late_records": sum(x.late for x in snap.stats),
        "data_end": from_us(snap.data_end_us).isoformat(), "feature_set_version": snap.spec.version,
    }
    path = out or s.data_dir / "snapshots" / "snapshots.parquet"
    write_snapshots(snap, path, {"split": json.dumps(plan.cutoffs)})
    path.with_name(path.stem + ".split.json").write_text(json.dumps(rep, indent=2) + "\n")
    rep["path"] = str(path)
    if as_json:
        console.print_json(json.dumps(rep))
        return
    print_report(rep)


def print_report(rep: dict[str, Any]) -> None:
    t = Table(
        title=f"temporal split: horizon {rep['horizon_days']} d, gap {rep['gap_days']} d",
        title_justify="left",
    )
    for col, just in (("part", "left"), ("cutoffs", "right"), ("from", "left"), ("to", "left"),
                      ("rows", "right"), ("positives", "right"), ("positive rate", "right")):
        t.add_column(col, justify=just, style="bold" if col == "part" else None)
    for name, p in rep["parts"].items():
        t.add_row(name, str(p["cutoffs"]), p["first_cutoff"] or "-", p["last_cutoff"] or "-",
                  f"{p['rows']:,}", f"{p['positives']:,}", f"{p['positive_rate']:.2%}")
    console.print(t)
    console.print(
        f"{rep['rows']:,} labelled rows written to {rep.get('path', '-')}\n"
        f"replayed {rep['records_replayed']:,} records ({rep['invalid_records']:,} invalid, "
        f"{rep['late_records']:,} late); data end {rep['data_end']}; feature set {rep['feature_set_version']}"
    )
