"""`churn import PATH... --mapping mapping.yaml` (registered by :mod:`churn.cli.app`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

SHOWN_REASONS = 8  # rejection reasons listed in the summary table; the rest are summed in one row


def register(app: typer.Typer) -> None:
    from churn.cli.common import console, err, friendly
    from churn.cli.common import settings_of as _settings

    @app.command("import")
    @friendly
    def import_command(
        ctx: typer.Context,
        paths: Annotated[list[Path], typer.Argument(help="CSV (.csv, .csv.gz), Parquet or JSON lines files.")],
        mapping: Annotated[Path, typer.Option("--mapping", "-m", help="The mapping YAML (see docs/import.md).")],
        topic: Annotated[str | None, typer.Option(help="Topic to import into (default: the global --topic).")] = None,
        max_rejected_share: Annotated[float | None, typer.Option(
            min=0.0, max=1.0, help="Refuse the import if more than this share of rows is rejected "
                                   "[default: the mapping's max_rejected_share, else 0.01].")] = None,
        max_future_skew_hours: Annotated[float | None, typer.Option(
            help="Reject rows dated more than this many hours after the clock as future "
                 "[default: the mapping's max_future_skew_hours, else 24].")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    ) -> None:
        """Import your own events (mapped to the event contract) into the partition log."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from pipeline.clock import SystemClock
        from pipeline.ingest.errors import RejectedShareError
        from pipeline.ingest.importer import run_import
        from pipeline.ingest.ledger import Ledger
        from pipeline.ingest.mapping import future_skew_problem, load_mapping
        from pipeline.log import open_configured_log

        if max_future_skew_hours is not None and (problem := future_skew_problem(max_future_skew_hours)):
            raise typer.BadParameter(problem, param_hint="--max-future-skew-hours")
        s = _settings(ctx)
        if topic is not None:
            s = s.model_copy(update={"topic": topic})
        m = load_mapping(mapping)
        made = _made_by_this_import(s)
        log = open_configured_log(s, create=True)
        written = False
        try:
            with Progress(
                TextColumn("[bold]{task.fields[phase]:<8}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                TextColumn("{task.fields[n]:,}"), TimeElapsedColumn(),
                console=err, transient=True, disable=as_json,
            ) as bar:
                task = bar.add_task("import", total=1.0, phase="hashing", n=0)
                summary = run_import(
                    paths, m, log, Ledger(s.data_dir / "import" / s.topic), SystemClock(),
                    max_rejected_share=max_rejected_share, max_future_skew_hours=max_future_skew_hours,
                    progress=lambda phase, f, n: bar.update(task, completed=f, phase=phase, n=n),
                )
            written = True
        except RejectedShareError as exc:
            if exc.summary is not None:
                _print(exc.summary, as_json, console, s.topic, m.type_values)
            raise
        finally:
            empty = not written and all(log.end_offset(p) == 0 for p in range(log.num_partitions))
            log.close()
            if empty:
                _remove(made)  # a failed first import leaves no empty topic behind (simulate would refuse it)
        _print(summary, as_json, console, s.topic, m.type_values)

    def _made_by_this_import(s) -> list[Path]:
        """What a file-log import would create: the data dir itself if missing, else the
        topic and its dead-letter sibling if missing (removed again if it fails before
        writing an event)."""
        if s.log_backend != "file":
            return []
        made: list[Path] = []
        for d in (s.data_dir, s.log_dir, s.data_dir / "import", s.log_dir / s.topic, s.log_dir / f"{s.topic}.dlq",
                  s.data_dir / "import" / s.topic):  # fmt: skip
            if not d.exists() and not any(d.is_relative_to(m) for m in made):
                made.append(d)
        return made

    def _remove(paths: list[Path]) -> None:
        import shutil

        for d in paths:
            shutil.rmtree(d, ignore_errors=True)

    def _near_misses(dropped: dict[str, int], mapped) -> list[tuple[str, int, str]]:
        """Dropped source values that differ from a mapped one only by case or surrounding
        spaces (``Play`` beside ``play``): most likely the same event, silently counted out."""
        folded = {str(v).strip().casefold(): str(v) for v in mapped}
        return [(v, n, folded[k]) for v, n in dropped.items()
                if (k := str(v).strip().casefold()) in folded and folded[k] != v]

    def _print(summary, as_json: bool, console, topic: str, mapped=()) -> None:
        from rich.table import Table

        d = summary.as_dict()
        if as_json:
            console.print_json(json.dumps(d))
            return
        t = Table(title=f"import {d['import_id']} into topic {topic}: {d['status']}", show_header=False,
                  title_justify="left")
        t.add_column(style="bold")
        t.add_column(justify="right")
        for f in d["files"]:
            rows = f" ({f['rows']:,} rows)" if "rows" in f else ""
            t.add_row("file", f"{f['path']}{rows}" + (f" - {f['skipped']}" if "skipped" in f else ""))
        t.add_row("rows read", f"{d['rows_read']:,}")
        t.add_row("events", f"{d['events']:,}")
        for name, n in d["events_by_type"].items():
            t.add_row(f"  {name}", f"{n:,}")
        for name, n in d["synthesized"].items():
            t.add_row(f"  synthesized {name}", f"{n:,}")
        dropped = sum(d["dropped_by_rule"].values())
        t.add_row("dropped (unmapped: drop)", f"{dropped:,}" + (
            " (" + ", ".join(f"{k} {v:,}" for k, v in list(d["dropped_by_rule"].items())[:4])
            + (", ..." if len(d["dropped_by_rule"]) > 4 else "") + ")" if dropped else ""))
        t.add_row("rejected", f"{d['rejected']:,} ({d['rejected_share']:.2%}, max {d['max_rejected_share']:.2%})")
        reasons = list(d["rejected_by_reason"].items())
        for reason, n in reasons[:SHOWN_REASONS]:
            t.add_row(f"  {reason}", f"{n:,}")
        if len(reasons) > SHOWN_REASONS:  # never let rows vanish from the table: say how many and where
            rest = reasons[SHOWN_REASONS:]
            t.add_row(f"  {len(rest)} more reasons (all: --json, or `churn tail --dlq`)", f"{sum(n for _, n in rest):,}")
        if d.get("duplicate_rows"):  # kept (each row is its own event), but they inflate every count
            t.add_row("duplicate rows (kept)", f"{d['duplicate_rows']:,}")
        t.add_row("users", f"{d['users']:,}")
        if d["first_ts"]:
            t.add_row("time span", f"{d['first_ts'][:16].replace('T', ' ')} .. {d['last_ts'][:16].replace('T', ' ')} UTC")
        t.add_row("written", f"{d['written']:,}" + (f" ({d['already_present']:,} already in the log)"
                                                    if d["already_present"] else ""))
        rate = f"{d['rows_per_second']:,} rows/s " if d["rows_per_second"] else ""
        t.add_row("time", f"{rate}({d['seconds']:.1f} s)")
        if fs := d.get("feature_spec"):  # what training and the stream will compute for this topic
            t.add_row("feature spec", f"{fs['version']}: {fs['features']} features ({fs['built_in']} built-in, "
                      f"{len(fs['actions'])} declared actions)")
        console.print(t)
        if d.get("profile_restored"):  # it was lost or damaged: say that it is back, and from what
            console.print(f"restored the topic's import profile {d['profile_restored']} from this import's mapping "
                          f"(feature spec {d['feature_spec']['version']}, as the import ledger recorded it)",
                          soft_wrap=True, markup=False)
        for value, n, near in _near_misses(d["dropped_by_rule"], mapped):
            console.print(f"[yellow]warning:[/] {n:,} rows of event type {value!r} were dropped (unmapped) but "
                          f"{near!r} is mapped: values match exactly (case and spaces count); add {value!r} to "
                          "event_type.values if it is the same event")
        if d.get("churn") == "cancel" and d.get("written") and not d["events_by_type"].get("cancel"):
            console.print("[yellow]warning:[/] no row of this import became a `cancel`: the mapping's churn "
                          "definition is `cancel`, and training needs churners. Is the source's cancellation "
                          "value mapped to `cancel` in event_type.values (see the dropped values above)?")
        if d.get("active_after_cancel"):
            console.print(f"[yellow]warning:[/] {d['active_after_cancel']:,} users have rows after their last "
                          "cancel and no signup after it: they count as not subscribed from the cancel on (neither "
                          "scored nor labelled after it). If the source logs resubscriptions, map them to `signup`.")
        if d.get("never_signed_up"):
            console.print(f"[yellow]warning:[/] {d['never_signed_up']:,} users have rows but no signup (in this import "
                          "or an earlier one) and signup.synthesize is `none`: they are never subscribed, so never "
                          "scored or labelled. Were their signup rows rejected (see the reasons above), or does the "
                          "source log none (then `signup: {synthesize: first_event}`)?", soft_wrap=True)
        if d.get("similar_user_ids"):
            shown = "; ".join(" / ".join(repr(u) for u in g) for g in d.get("similar_user_id_examples", []))
            console.print(f"[yellow]warning:[/] {d['similar_user_ids']:,} user ids equal another one of this import "
                          f"but for letter case or Unicode form (e.g. {shown}): each is its own user here, with its "
                          "own history and churn. If the source means one person, normalise the ids in the "
                          "export (lower-case, NFC) and import into a new topic.", soft_wrap=True)
        if d.get("late_events"):
            console.print(f"[yellow]warning:[/] {d['late_events']:,} events are more than 24 h older than the last "
                          "event already in their partition (at least that many: an earlier out-of-order import "
                          "can hold newer ones before it): the feature engine (lateness 24 h) will count them as "
                          "late and not apply them. Does this file overlap an earlier import (a re-exported, grown file)? Import "
                          "only the new rows, or all files in one run into a fresh topic (--topic).")
