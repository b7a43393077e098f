"""`churn stream`: run the stream flow directly (no Prefect server needed) and print a summary.

However it ends (``--until-caught-up``, ``--max-seconds``, Ctrl-C), the command prints a
closing report: events, events/s, final lag per partition and the top 10 at-risk
active users with their reasons (:func:`closing_report`; ``--json`` adds it as ``report``).

``churn stream-worker`` runs ONE stand-alone worker (any host; Kafka + PostgreSQL + MLflow
settings only, no shared data dir): :mod:`pipeline.stream.host`.

``churn/cli/app.py`` calls :func:`register` once to add the commands to the ``churn`` app.
Ctrl-C (or SIGTERM) drains: every worker checkpoints, then the command exits.
"""

from __future__ import annotations

import json
import signal
import time
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
        high_risk: Annotated[
            str | None,
            typer.Option(help="Who is high risk (gets reasons): multiple_of_base_rate:3 (default, 3x the "
                         "champion's training base rate), top_percent:5, absolute:0.2 (env CHURN_STREAM_HIGH_RISK)."),
        ] = None,
        alert_threshold: Annotated[
            float | None,
            typer.Option(
                min=0.0, max=1.0, help="Same as --high-risk absolute:<this>."
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
        champion_wait: Annotated[
            float | None,
            typer.Option(min=0, help="Seconds to wait for a champion model before failing (default: until "
                         "stopped; 60 with --until-caught-up)."),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the flow's summary as JSON.")
        ] = False,
    ) -> None:
        """Score the event stream with the champion model (runs until Ctrl-C or a limit)."""
        from churn.cli.common import friendly

        if reasons is not None and reasons not in ("approx", "exact"):
            raise typer.BadParameter("use approx or exact", param_hint="--reasons")
        friendly(_run)(ctx, as_json, group=group, workers=workers, min_workers=min_workers, max_workers=max_workers,
                       autoscale=autoscale, batch_size=batch_size, max_wait_s=max_wait,
                       checkpoint_interval_s=checkpoint_interval, flush_interval_s=flush_interval,
                       high_risk=high_risk, alert_threshold=alert_threshold, reasons=reasons, max_seconds=max_seconds,
                       until_caught_up=until_caught_up, tracking_uri=tracking_uri,
                       champion_wait_s=champion_wait)  # fmt: skip


    @app.command("stream-worker")
    def stream_worker_command(
        ctx: typer.Context,
        kafka_bootstrap: Annotated[
            str | None, typer.Option(help="Kafka bootstrap servers host:port[,...] (env CHURN_KAFKA_BOOTSTRAP).")
        ] = None,
        store_url: Annotated[
            str | None,
            typer.Option(help="PostgreSQL store: checkpoints, leases, scores (env CHURN_STORE_URL)."),
        ] = None,
        tracking_uri: Annotated[
            str | None,
            typer.Option(help="MLflow tracking URI holding the champion (env CHURN_MLFLOW_TRACKING_URI)."),
        ] = None,
        group: Annotated[str | None, typer.Option(help="Consumer group (default churn-stream).")] = None,
        lease_ttl: Annotated[
            float, typer.Option(min=0.1, help="Seconds before a dead worker's partitions move (default 15).")
        ] = 15.0,
        champion_wait: Annotated[
            float, typer.Option(min=0, help="Seconds to wait for a champion before failing (default 0).")
        ] = 0.0,
        cache_dir: Annotated[
            str | None, typer.Option(help="Private directory for the champion export (default: a temporary one).")
        ] = None,
        member: Annotated[
            str | None, typer.Option(help="This worker's id in the group (default host:pid:random).")
        ] = None,
        batch_size: Annotated[int | None, typer.Option(min=1, help="Records per micro-batch (default 1000).")] = None,
        checkpoint_interval: Annotated[
            float | None, typer.Option(min=0, help="Seconds between checkpoints (default 5).")
        ] = None,
        heartbeat_interval: Annotated[
            float | None, typer.Option(min=0.05, help="Seconds between lease renewals/heartbeats (default 1).")
        ] = None,
        max_events_per_s: Annotated[
            float | None, typer.Option(min=1, help="Throttle: at most this many events/s (replays, tests).")
        ] = None,
        max_seconds: Annotated[float | None, typer.Option(min=0, help="Stop (drain) after this many seconds.")] = None,
        until_caught_up: Annotated[
            bool, typer.Option(help="Stop once every partition this worker owns is caught up.")
        ] = False,
        drift: Annotated[
            bool | None, typer.Option("--drift/--no-drift", help="Drift checks on the host that owns the leader "
                                      "partition (default: CHURN_DRIFT_ENABLED, true).")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the worker's summary as JSON.")] = False,
    ) -> None:
        """Run ONE scoring worker on this host: joins the group in PostgreSQL, takes its fair share of
        the Kafka partitions, restores their state and scores with the registry's champion. SIGTERM
        checkpoints, releases the leases and exits."""
        from churn.cli.common import friendly

        friendly(_run_worker)(ctx, as_json, kafka_bootstrap=kafka_bootstrap, store_url=store_url,
                              tracking_uri=tracking_uri, group=group, lease_ttl_s=lease_ttl,
                              champion_wait_s=champion_wait, cache_dir=cache_dir, member=member,
                              max_seconds=max_seconds, until_caught_up=until_caught_up, drift=drift,
                              stream={"batch_size": batch_size, "checkpoint_interval_s": checkpoint_interval,
                                      "heartbeat_interval_s": heartbeat_interval,
                                      "max_events_per_s": max_events_per_s})  # fmt: skip


def _run_worker(ctx: typer.Context, as_json: bool, **o: Any) -> None:
    import logging
    import os
    from dataclasses import asdict
    from pathlib import Path

    from churn.cli.common import console
    from churn.cli.common import settings_of as _settings
    from flows.retrain import REQUESTER
    from pipeline.drift.config import DriftConfig
    from pipeline.log.kafka_config import log_config
    from pipeline.stream.config import StreamConfig
    from pipeline.stream.host import HostSettings, run_host

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per worker: scale by processes
    s = _settings(ctx)
    # as `churn stream` checks drift (same settings and retrain requester); with no --cache-dir the
    # host's files are temporary, so no HTML reports (the runs and their metrics are in the store)
    drift = DriftConfig.from_settings(s, enabled=o["drift"], full_report_every=None if o["cache_dir"] else 0,
                                      retrain_requester=getattr(s, "drift_retrain_requester", None) or REQUESTER)
    log = {k: v for k, v in log_config(s).items() if k not in ("log_backend", "kafka_bootstrap")}
    host = HostSettings(
        topic=s.topic, kafka_bootstrap=o["kafka_bootstrap"] or s.kafka_bootstrap,
        store_url=o["store_url"] or s.store_url, tracking_uri=o["tracking_uri"] or s.mlflow_tracking_uri,
        stream=StreamConfig.from_settings(s, group=o["group"], **o["stream"]), log=log,
        cache_dir=Path(o["cache_dir"]) if o["cache_dir"] else None, lease_ttl_s=o["lease_ttl_s"],
        champion_wait_s=o["champion_wait_s"], member=o["member"], drift=asdict(drift) if drift.enabled else None,
    )  # fmt: skip
    host.check()  # one line before anything connects
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = {"now": False}

    def _stop(signum: int, _frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    summary = run_host(host, lambda: stop["now"], until_caught_up=o["until_caught_up"], max_seconds=o["max_seconds"],
                       prepare=True)
    if as_json:
        console.print_json(json.dumps(summary, default=str))
    else:
        console.print(f"worker {summary.get('member')}: {summary.get('events', 0)} events scored; "
                      f"checkpoints {summary.get('checkpoints', 0)}; partitions lost to fencing "
                      f"{summary.get('lost') or 'none'}", soft_wrap=True, highlight=False, markup=False)  # fmt: skip


def _run(ctx: typer.Context, as_json: bool, **options: Any) -> None:
    from churn.cli.common import console
    from churn.cli.common import settings_of as _settings
    from flows.env import local_defaults
    from pipeline.errors import ChurnError
    from pipeline.log import open_configured_log
    from pipeline.stream.config import StreamConfig

    s = _settings(ctx)
    if s.log_backend == "file" and not (s.topic_dir / "topic.json").exists():
        from pipeline.log.file import lost_metadata

        if (problem := lost_metadata(s.topic_dir)) is not None:
            raise ChurnError(problem)
        raise ChurnError(
            f"no topic {s.topic!r} under {s.log_dir}; run `churn simulate` first (or pass --data-dir)"
        )
    if s.log_backend != "file":  # Kafka: the topic must exist on the cluster (one clear line)
        from pipeline.log import open_configured_log

        open_configured_log(s, create=False).close()
    # Check the options now, before Prefect's temporary server takes its seconds to start.
    fields = {k: v for k, v in options.items() if k in StreamConfig.__dataclass_fields__}
    cfg = StreamConfig.from_settings(s, reasons_method=options.get("reasons"), **fields)
    local_defaults()
    from flows.logs import quiet_expected_failures
    from flows.stream import stream
    from pipeline.stream.preflight import preflight

    with open_configured_log(s, create=False) as log:
        before = log.committed(cfg.group)
        preflight(s.data_dir, s.topic, cfg.group, log.num_partitions, options["tracking_uri"] or s.resolved_mlflow_uri)
    t0 = time.monotonic()
    import flows.stream as flow_module
    from flows.stream import STOP, SUPERVISING

    STOP.clear()
    stopped_by = {"how": "interrupted (Ctrl-C)"}

    def _stop(signum: int, _frame: Any) -> None:
        # Ctrl-C and SIGTERM (`kill`, systemd, docker stop) alike: while the supervisor runs
        # it is asked to drain (every worker checkpoints) and the flow returns its summary;
        # before that (Prefect still starting), or a second time, the run is interrupted.
        # SIGTERM used to end the process at once: no report, and no drain.
        stopped_by["how"] = "interrupted (Ctrl-C)" if signum == signal.SIGINT else "stopped (SIGTERM)"
        if SUPERVISING.is_set() and not STOP.is_set():
            STOP.set()
            return
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, _stop), signal.signal(signal.SIGTERM, _stop)
    flow_module.ON_SIGTERM = _stop  # Prefect's engine replaces it during the flow: put back while supervising
    try:
        with quiet_expected_failures():  # a StreamError is our one `error:` line, not also Prefect's four
            result: dict[str, Any] | None = stream(data_dir=str(s.data_dir.resolve()), topic=s.topic, **options)
    except KeyboardInterrupt:  # interrupted before the supervisor ran, or a second time during its drain
        result = None
    finally:
        flow_module.ON_SIGTERM = None
        signal.signal(signal.SIGINT, old[0])
        signal.signal(signal.SIGTERM, old[1])
        asked = STOP.is_set()
        STOP.clear()  # a later in-process run (tests) starts unstopped
    if result is not None and asked and result.get("stopped") == "stopped":  # not "caught up" at the same moment
        result = result | {"stopped": stopped_by["how"]}
    report = closing_report(s, cfg.group, before, time.monotonic() - t0, result, cfg.high_risk_rule,
                            interrupted=stopped_by["how"])
    if as_json:
        console.print_json(json.dumps((result or {}) | {"report": report.as_dict()}, default=str))
        return
    if result is not None:
        print_summary(result, console)
    for line in report.lines():
        console.print(line, soft_wrap=True, highlight=False, markup=False)


def closing_report(
    settings: Any, group: str, before: dict[int, int], seconds: float, result: dict[str, Any] | None,
    high_risk: Any = None, interrupted: str = "interrupted (Ctrl-C)",
) -> Any:
    """What `churn stream` prints last (see :mod:`pipeline.stream.report`): events, events/s,
    final lag per partition and the top 10 at-risk active users, read from the log and the
    store, so it is the same after Ctrl-C (``result`` None) as after a limit."""
    from pipeline.log import open_configured_log
    from pipeline.store import Store
    from pipeline.stream.report import stream_report

    stopped = interrupted if result is None else str(result["stopped"])
    version = None if result is None else result.get("model_version")
    with open_configured_log(settings, create=False) as log, Store(settings.resolved_store_url) as store:
        # after Ctrl-C the version is read from the scores; otherwise the flow said which it loaded (or none)
        return stream_report(store, log, group, before, seconds=seconds, stopped=stopped, model_version=version,
                             high_risk=high_risk, data_dir=settings.data_dir, version_from_scores=result is None)


def print_summary(result: dict[str, Any], console: Any) -> None:
    """The flow's own figures the closing report does not show."""
    console.print(f"topic {result['topic']}; workers {result['workers']}; restarts {result['restarts']}; "
                  f"health {result['health'] or '-'}", soft_wrap=True, highlight=False)  # fmt: skip
