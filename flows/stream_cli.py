"""`churn stream`: run the stream flow directly (no Prefect server needed) and print a summary.

``pipeline/cli.py`` calls :func:`register` once to add the command to the ``churn`` app.
Ctrl-C (or SIGTERM) drains: every worker checkpoints, then the command exits.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    """Add ``stream`` to the ``churn`` Typer app."""

    @app.command("stream")
    def stream_command(
        ctx: typer.Context,
        group: Annotated[
            str | None, typer.Option(help="Consumer group (default churn-stream).")
        ] = None,
        workers: Annotated[
            int | None, typer.Option(min=1, help="Workers to start with (default 1).")
        ] = None,
        min_workers: Annotated[
            int | None,
            typer.Option("--min", min=1, help="Fewest workers the autoscaler keeps (default 1)."),
        ] = None,
        max_workers: Annotated[
            int | None,
            typer.Option(
                "--max", min=1, help="Most workers (default 4, at most the cores; never more than partitions)."
            ),
        ] = None,
        autoscale: Annotated[
            bool | None,
            typer.Option(
                "--autoscale/--no-autoscale", help="Scale the workers on lag (default on)."
            ),
        ] = None,
        batch_size: Annotated[
            int | None, typer.Option(min=1, help="Records per micro-batch (default 1000).")
        ] = None,
        max_wait: Annotated[
            float | None,
            typer.Option(
                min=0, help="Seconds a partial batch waits for more records (default 0.1)."
            ),
        ] = None,
        checkpoint_interval: Annotated[
            float | None, typer.Option(min=0, help="Seconds between checkpoints (default 5).")
        ] = None,
        flush_interval: Annotated[
            float | None,
            typer.Option(
                min=0, help="Seconds scores may wait before they are written (default 2)."
            ),
        ] = None,
        alert_threshold: Annotated[
            float | None,
            typer.Option(
                min=0.0, max=1.0, help="Store top reasons for risk >= this (default 0.5)."
            ),
        ] = None,
        reasons: Annotated[
            str | None,
            typer.Option(help="Contributions: approx (fast, default) or exact (TreeSHAP)."),
        ] = None,
        max_seconds: Annotated[
            float | None, typer.Option(min=0, help="Stop (drain) after this many seconds.")
        ] = None,
        until_caught_up: Annotated[
            bool, typer.Option(help="Stop once every partition is caught up with the log end.")
        ] = False,
        tracking_uri: Annotated[
            str | None,
            typer.Option(
                help="MLflow tracking URI (env CHURN_MLFLOW_TRACKING_URI; default SQLite under mlruns/)."
            ),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the flow's summary as JSON.")
        ] = False,
    ) -> None:
        """Score the event stream with the champion model (runs until Ctrl-C or a limit)."""
        from pipeline.cli import friendly

        if reasons is not None and reasons not in ("approx", "exact"):
            raise typer.BadParameter("use approx or exact", param_hint="--reasons")
        friendly(_run)(ctx, as_json, group=group, workers=workers, min_workers=min_workers, max_workers=max_workers,
                       autoscale=autoscale, batch_size=batch_size, max_wait_s=max_wait,
                       checkpoint_interval_s=checkpoint_interval, flush_interval_s=flush_interval,
                       alert_threshold=alert_threshold, reasons=reasons, max_seconds=max_seconds,
                       until_caught_up=until_caught_up, tracking_uri=tracking_uri)  # fmt: skip


def _run(ctx: typer.Context, as_json: bool, **options: Any) -> None:
    from flows.cli import _env_defaults
    from pipeline.cli import _settings, console
    from pipeline.errors import ChurnError
    from pipeline.stream.config import StreamConfig

    s = _settings(ctx)
    if not (s.topic_dir / "topic.json").exists():
        raise ChurnError(
            f"no topic {s.topic!r} under {s.log_dir}; run `churn simulate` first (or pass --data-dir)"
        )
    # Check the options now, before Prefect's temporary server takes its seconds to start.
    fields = {k: v for k, v in options.items() if k in StreamConfig.__dataclass_fields__}
    StreamConfig.from_settings(s, reasons_method=options.get("reasons"), **fields)
    _env_defaults()
    from flows.stream import stream

    result = stream(data_dir=str(s.data_dir.resolve()), topic=s.topic, **options)
    if as_json:
        console.print_json(json.dumps(result, default=str))
        return
    print_summary(result, console)


def print_summary(result: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    console.print(f"stream {result['group']} on topic {result['topic']}: {result['stopped']} after "
                  f"{result['seconds']:.1f} s")  # fmt: skip
    t = Table(box=None, pad_edge=False)
    for h in ("PARTITION", "COMMITTED", "LAG"):
        t.add_column(h, justify="right")
    for p, off in sorted(result["committed"].items(), key=lambda kv: int(kv[0])):
        t.add_row(str(p), f"{off:,}", f"{result['lag'][p]:,}")
    console.print(t)
    console.print(f"events scored: {result['events']:,}; total lag {result['total_lag']:,}; champion "
                  f"v{result['model_version'] or '-'}; workers {result['workers']}; restarts {result['restarts']}; "
                  f"health {result['health'] or '-'}", soft_wrap=True)  # fmt: skip
