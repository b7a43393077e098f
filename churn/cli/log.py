"""`churn simulate|produce|lag|topics|retention|tail`: make and inspect the event log."""

from __future__ import annotations

import json
import shutil
import signal
from datetime import UTC, date, datetime
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from churn.cli.common import console, err, friendly, open_log
from churn.cli.common import settings_of as _settings
from pipeline.errors import ChurnError

_COMMANDS: list[Any] = []


def _command():  # noqa: ANN202 - collects the commands :func:`register` adds
    def collect(fn: Any) -> Any:
        _COMMANDS.append(fn)
        return fn

    return collect


def register(app: typer.Typer) -> None:
    """Add the log commands to the ``churn`` Typer app."""
    for fn in _COMMANDS:
        app.command()(fn)

def _print_summary(summary: Any, title: str, as_json: bool) -> None:
    d = summary.as_dict()
    if as_json:
        console.print_json(json.dumps(d))
        return
    console.print(title, soft_wrap=True, highlight=False, markup=False)  # a title inside the table wraps mid-path
    t = Table(show_header=False)
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_row("period", f"{d['first_day']} .. {d['last_day']} ({d['days']} days)")
    t.add_row("users", f"{d['users']:,} ({d['active_at_end']:,} active at end)")
    t.add_row("events", f"{d['events']:,}")
    for name, n in d["events_by_type"].items():
        t.add_row(f"  {name}", f"{n:,}")
    t.add_row("cancels", f"{d['cancels_voluntary']:,} voluntary / {d['cancels_involuntary']:,} involuntary")
    t.add_row("monthly churn rate", f"{d['monthly_churn_rate']:.2%}")
    t.add_row("generation rate", f"{d['events_per_second']:,} events/s ({d['seconds']:.1f} s)")
    console.print(t)


@_command()
@friendly
def simulate(
    ctx: typer.Context,
    users: Annotated[int, typer.Option(min=1, help="Subscribers over the history (60 % exist at the start).")] = 20_000,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Days of history.")] = 180,
    seed: Annotated[int | None, typer.Option(min=0, help="Random seed [default: settings seed, 42].")] = None,
    start: Annotated[str, typer.Option(help="First simulated day (UTC date, YYYY-MM-DD).")] = "2026-01-01",
    drift: Annotated[str | None, typer.Option(help="Drift scenario: price_increase, content_outage, device_shift.")] = None,
    drift_day: Annotated[int | None, typer.Option(min=0, help="Simulated day the drift starts (may lie in the live phase).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Delete an existing topic and simulator state first.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Generate a history of subscriber events into the partition log."""
    from pipeline.pidlock import PidLock
    from pipeline.simulator import SimConfig, Simulator
    from pipeline.simulator.history import simulate_history
    from pipeline.simulator.lock import LOCK_NAME

    s = _settings(ctx)
    try:
        start_dt = datetime.combine(date.fromisoformat(start), datetime.min.time(), UTC)
    except ValueError:
        raise typer.BadParameter(f"{start!r} is not a date like 2026-01-01", param_hint="--start") from None
    config = SimConfig(users=users, days=days, seed=s.seed if seed is None else seed, start=start_dt, drift=drift, drift_day=drift_day)
    lock = PidLock(s.sim_dir / LOCK_NAME)  # a live producer on this state would write into what we replace
    if not lock.try_acquire():
        raise ChurnError(
            f"a producer (pid {lock.holder()}) is producing from {s.sim_dir}; stop it (churn down, or Ctrl-C "
            "in its terminal) before simulating a new history there, or use another --data-dir"
        )
    try:
        if s.topic_dir.exists() or (s.sim_dir / "state.json").exists():
            if not overwrite:
                raise ChurnError(
                    f"{s.topic_dir} or {s.sim_dir} already holds a history; pass --overwrite to replace it "
                    "or use another --data-dir"
                )
            shutil.rmtree(s.topic_dir, ignore_errors=True)
            shutil.rmtree(s.topic_dir.with_name(s.topic + ".dlq"), ignore_errors=True)
            for child in s.sim_dir.iterdir():  # all but the lock we hold
                if child.name != LOCK_NAME:
                    shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
        log = open_log(s)
        try:
            with Progress(
                TextColumn("[bold]simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("days"),
                TextColumn("{task.fields[events]:,} events"), TimeElapsedColumn(),
                console=err, transient=True, disable=as_json,
            ) as bar:
                task = bar.add_task("sim", total=days, events=0)
                summary = simulate_history(
                    Simulator(config), log, s.sim_dir,
                    progress=lambda d, n: bar.update(task, completed=d, events=n),
                )
        finally:
            log.close()
    finally:
        lock.release()
    _print_summary(summary, f"history written to {s.topic_dir} ({log.num_partitions} partitions)", as_json)


@_command()
@friendly
def produce(
    ctx: typer.Context,
    rate: Annotated[float, typer.Option(min=0, help="Events per second; 0 = as fast as possible.")] = 1000.0,
    max_events: Annotated[int | None, typer.Option(min=1, help="Stop after this many events.")] = None,
    days: Annotated[int | None, typer.Option(min=1, help="Stop after this many simulated days.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Continue the simulated population live into the log until Ctrl-C (or a limit)."""
    from pipeline.simulator.history import produce_live

    s = _settings(ctx)
    if not (s.sim_dir / "state.json").exists():
        raise ChurnError(f"no simulated population in {s.sim_dir}; run `churn simulate` first")
    log = open_log(s, create=False)
    stop = {"now": False}

    def _stop(signum: int, frame: Any) -> None:
        stop["now"] = True

    old = signal.signal(signal.SIGINT, _stop), signal.signal(signal.SIGTERM, _stop)
    try:
        with Progress(
            TextColumn("[bold]producing"), TextColumn("{task.fields[events]:,} events"),
            TextColumn("day +{task.fields[days]}"), TimeElapsedColumn(),
            console=err, transient=True, disable=as_json,
        ) as bar:
            task = bar.add_task("produce", total=None, events=0, days=0)
            summary = produce_live(
                s.sim_dir, log, rate or None, max_events=max_events, max_days=days,
                progress=lambda d, n: bar.update(task, events=n, days=d),
                should_stop=lambda: stop["now"],
            )
    finally:
        signal.signal(signal.SIGINT, old[0])
        signal.signal(signal.SIGTERM, old[1])
        log.close()
    _print_summary(summary, "produced" + (" (stopped)" if stop["now"] else ""), as_json)


DEFAULT_GROUP = "churn-stream"


def _checkpoints_elsewhere(log, data_dir, group: str, lags) -> str | None:
    """A note when the stream's checkpoints resume at other offsets than the committed ones
    (an offsets file deleted or restored from elsewhere, a checkpoint restored from a backup):
    the LAG column then is not what the stream will do."""
    from pipeline.stream.checkpoint import CheckpointStore
    from pipeline.stream.config import StreamPaths

    store = CheckpointStore(StreamPaths(data_dir, group).checkpoints, log.name, group)
    off = {}
    for x in lags:
        at = store.next_offset(x.partition)
        if at is not None and at != x.current_offset:
            off[x.partition] = (at, x.current_offset)
    if not off:
        return None
    each = "; ".join(f"partition {p} at {at:,} (committed: {'none' if c is None else f'{c:,}'})"
                     for p, (at, c) in off.items())  # fmt: skip
    return (f"note: the stream's checkpoints resume elsewhere than the committed offsets: {each}. On start "
            "the stream commits its checkpoints' offsets and goes on from there (records after a checkpoint are "
            "applied again and replace the same scores), so the lag above is not the work it will do")


@_command()
@friendly
def lag(
    ctx: typer.Context,
    group: Annotated[str, typer.Option(help="Consumer group.")] = DEFAULT_GROUP,
    reset_offsets: Annotated[
        str | None, typer.Option(help="Recover or rewind the group first: earliest | latest.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print rows as JSON (numbers as numbers, null when unknown).")] = False,
) -> None:
    """Per-partition lag of a consumer group, like `kafka-consumer-groups --describe`."""
    from pipeline.clock import SystemClock
    from pipeline.log import LAG_HEADERS, describe_group, describe_rows, past_end_problem
    from pipeline.log.lag import Status
    from pipeline.stream.offsets import checkpoint_problem, checkpoints_resume, reset_group

    s = _settings(ctx)
    clock = SystemClock()
    with open_log(s, create=False) as log:
        if reset_offsets is not None:
            if reset_offsets not in ("earliest", "latest"):
                raise typer.BadParameter("use earliest or latest", param_hint="--reset-offsets")
            done = reset_group(log, s.data_dir, group, reset_offsets, clock.now())  # offsets + checkpoints
            err.print(done.describe(group), soft_wrap=True)
        lags = describe_group(log, group, clock)
        # the log lost records under the group or its checkpoints: never "OK"
        problem = past_end_problem(log.name, group, lags) or checkpoint_problem(log, s.data_dir, group)
        past = [x.partition for x in lags if x.status is Status.PAST_END]
        resume = checkpoints_resume(log, s.data_dir, group, past) if past and problem else None
        if resume is not None and checkpoint_problem(log, s.data_dir, group) is None:
            # only the committed offsets are off (e.g. a crash between checkpoint and commit, or
            # an offsets file restored from elsewhere): the stream commits its checkpoints' own
            problem = None
            note = (f"note: committed offsets of partition(s) {past} lie past the log end, but the "
                    f"stream's checkpoints resume inside it (at {resume}): start the stream "
                    "(`churn stream`); it commits the checkpoints' offsets, nothing is skipped or lost")
        else:
            note = None if problem else _checkpoints_elsewhere(log, s.data_dir, group, lags)
    if as_json:
        console.print_json(json.dumps([{"group": group, "topic": s.topic} | x.record() for x in lags]))
        if note:
            err.print(note, soft_wrap=True)
        if problem:
            raise ChurnError(problem)
        return
    t = Table(title=f"GROUP {group}  TOPIC {s.topic}", title_justify="left", box=None, pad_edge=False)
    for h in LAG_HEADERS:
        t.add_column(h, justify="left" if h == "STATUS" else "right", no_wrap=True)
    for r in describe_rows(lags):
        t.add_row(*(r[h] for h in LAG_HEADERS))
    console.print(t)
    total = sum(x.lag for x in lags)
    console.print(f"total lag: {total:,} records")
    if note:
        err.print(note, soft_wrap=True)
    if problem:
        raise ChurnError(problem)


@_command()
@friendly
def topics(
    ctx: typer.Context,
    create: Annotated[bool, typer.Option("--create", help="Create the topic and its .dlq with --partitions (Kafka: "
                                         "replication CHURN_KAFKA_REPLICATION_FACTOR); another existing count is an error.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Topics (file: under the data directory; Kafka: the configured one): partitions, segments, records, bytes, retention."""
    from pipeline.log import open_log

    s = _settings(ctx)
    if create:
        from pipeline.log.kafka_config import create_configured_topics

        for name, n, created in create_configured_topics(s):
            err.print(f"{'created' if created else 'exists:'} topic {name!r} with {n} partitions")
    kafka = s.log_backend == "kafka"
    if kafka:
        from pipeline.log.kafka_config import kafka_topic_infos

        infos = kafka_topic_infos(s)
    else:
        names = sorted(p.name for p in s.log_dir.glob("*") if (p / "topic.json").exists()) if s.log_dir.exists() else []
        from pipeline.log.file import lost_metadata

        for lost in (p for p in sorted(s.log_dir.glob("*")) if p.is_dir() and lost_metadata(p)):
            err.print(f"warning: {lost_metadata(lost)}", soft_wrap=True, markup=False)  # not silently left out
        if not names:
            raise ChurnError(f"no topics under {s.log_dir}; run `churn simulate` first (or check --data-dir)")
        infos = []
        for name in names:
            with open_log(s.log_dir, name) as log:
                infos.append(log.topic_info())
    if as_json:
        console.print_json(json.dumps([
            {"topic": i.name, "partitions": i.num_partitions, "segments": i.segments, "records": i.records,
             "bytes": i.bytes, "groups": list(i.groups), "retention": dict(i.retention),
             "per_partition": [{"partition": p.partition, "start_offset": p.start_offset,
                                "end_offset": p.end_offset, "segments": p.segments, "bytes": p.bytes}
                               for p in i.partitions]}
            for i in infos
        ]))
        return
    where = f"Kafka at {s.kafka_bootstrap}" if kafka else str(s.log_dir)
    t = Table(title=f"topics in {where}", title_justify="left", box=None, pad_edge=False)
    for h in ("TOPIC", "PARTITIONS", "SEGMENTS", "RECORDS", "BYTES", "GROUPS", "RETENTION"):
        t.add_column(h, justify="left" if h in ("TOPIC", "GROUPS", "RETENTION") else "right", no_wrap=True)
    for i in infos:
        ret = ", ".join(f"{k}={v}" for k, v in i.retention.items() if v not in (None, False)) or "keep all"
        # Kafka clients see no segments or sizes; retention is the broker's topic config
        t.add_row(i.name, str(i.num_partitions), "-" if kafka else str(i.segments), f"{i.records:,}",
                  "-" if kafka else _size(i.bytes), ", ".join(i.groups) or "-", "broker (retention.ms)" if kafka else ret)
    console.print(t)


@_command()
@friendly
def retention(
    ctx: typer.Context,
    hours: Annotated[float | None, typer.Option(min=0.001, help="Override CHURN_RETENTION_HOURS.")] = None,
    max_bytes: Annotated[int | None, typer.Option(min=1, help="Override CHURN_RETENTION_BYTES (per partition).")] = None,
) -> None:
    """Apply segment retention (age by newest event time, size per partition) now."""
    from pipeline.clock import SystemClock
    from pipeline.log import RetentionPolicy, apply_retention

    s = _settings(ctx)
    if s.log_backend != "file":
        raise ChurnError("retention on Kafka is the broker's (retention.ms / retention.bytes on the topic)")
    base = RetentionPolicy.from_settings(s)
    policy = RetentionPolicy(
        max_age_s=base.max_age_s if hours is None else hours * 3600.0,
        max_bytes=base.max_bytes if max_bytes is None else max_bytes,
        allow_uncommitted=base.allow_uncommitted,
    )
    if policy.max_age_s is None and policy.max_bytes is None:
        raise ChurnError("no retention configured: set CHURN_RETENTION_HOURS / CHURN_RETENTION_BYTES or pass --hours / --max-bytes")
    with open_log(s, create=False) as log:
        deleted = apply_retention(log, policy, SystemClock())
    for d in deleted:
        console.print(f"deleted partition {d.partition} segment {d.base_offset}..{d.end_offset - 1} ({_size(d.bytes)}, {d.reason})")
    console.print(f"{len(deleted)} segment(s) deleted" + ("" if policy.allow_uncommitted else " (records some group has not committed are kept)"))


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


@_command()
@friendly
def tail(
    ctx: typer.Context,
    partition: Annotated[int, typer.Option("--partition", "-p", min=0, help="Partition to read.")] = 0,
    from_: Annotated[str | None, typer.Option("--from", help="earliest | latest | OFFSET | -N (last N) [default: -LIMIT].")] = None,
    limit: Annotated[int, typer.Option("-n", "--limit", min=1, help="Records to show.")] = 10,
    dlq: Annotated[bool, typer.Option(help="Read the topic's dead-letter topic instead.")] = False,
) -> None:
    """Print records of one partition with their offsets (one JSON line each)."""
    from pipeline.log import open_log
    from pipeline.log import tail as tail_records

    s = _settings(ctx)
    name = f"{s.topic}.dlq" if dlq else s.topic
    if dlq and not (s.log_dir / name / "topic.json").exists() and (s.topic_dir / "topic.json").exists():
        err.print(f"{name} is empty (nothing was dead-lettered)", soft_wrap=True, markup=False)  # the stream makes it at its first dead letter
        return
    if not (s.log_dir / name / "topic.json").exists():
        from pipeline.log.file import lost_metadata

        if (problem := lost_metadata(s.log_dir / name)) is not None:
            raise ChurnError(problem)
        raise ChurnError(f"no topic {name!r} under {s.log_dir}" + ("" if dlq else "; run `churn simulate` first"))
    with open_log(s.log_dir, name) as log:
        if partition >= log.num_partitions:
            raise typer.BadParameter(f"topic {name!r} has partitions 0..{log.num_partitions - 1}", param_hint="--partition")
        records = tail_records(log, partition, from_ if from_ is not None else f"-{limit}", limit)
        empty = not records and log.topic_info().records == 0
    for r in records:
        typer.echo(f"{r.partition}:{r.offset}\t{r.value.decode('utf-8', 'replace')}")  # pipe-friendly
    if not records:  # "no records at that position" would send the user hunting for a better one
        what = "no records at that position"
        if empty:
            what = f"{name} is empty" + (" (nothing was dead-lettered)" if dlq else "")
        err.print(what, soft_wrap=True, markup=False)

