"""What the dashboard reads: the store, the drift reports and the MLflow registry.

Read-only by construction: a SQLite store or MLflow database that does not exist yet is
reported as missing (the pages then say what to run), never created. The pure helpers
(``stream_timeseries``, ``overview_kpis``, ``format_reasons``...) take DataFrames and are
unit-tested; the ``load_*`` functions do the I/O.

>>> src = Sources.from_env()  # doctest: +SKIP
>>> store = open_store(src)   # None on a fresh install
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.autoscale.alerts import Alert, Level, assess
from pipeline.highrisk import ResolvedThreshold
from pipeline.log.lag import Status

WINDOW = timedelta(minutes=15)  # stream charts show this much of the newest metrics
STALE_TICKS = 3  # no metrics tick for this many intervals: the stream has stopped, it is not live
DEFAULT_MONTHLY_REVENUE = 10.0  # when a score row has no plan price
MLFLOW_UI = "http://127.0.0.1:5000"
PREFECT_UI = "http://127.0.0.1:4200"

NEXT_STEPS = {
    "store": "no data yet — run the stream: `churn simulate`, `churn train`, then "
             "`churn stream` (or `make demo`) and this page fills in live.",
    "registry": "no registered model yet — run `churn train` to train, register and "
                "promote a champion.",
    "drift": "no drift checks yet — run the stream (`churn stream`, or `make demo`): it compares "
             "live features with the champion's training reference and stores the results here.",
}  # fmt: skip
# ... once the data dir holds an event log (simulated, e.g. by a running `make demo`): the
# next steps are under way, so the page says what it waits for, not what to run again
UNDER_WAY = {
    "store": "waiting for the stream — the event log exists; the page fills in live once training has "
             "registered a champion and the stream writes its first metrics (`make demo` prints each step "
             "in its terminal; by hand: `churn train`, then `churn stream`).",
    "registry": "no registered model yet — training comes next or is running (`make demo` runs the "
                "`train/weekly` deployment; by hand: `churn train`); the champion appears here once the gate "
                "promotes one.",
    "drift": "no drift checks yet — the stream compares live features with the champion's training "
             "reference every few minutes once it runs; the results appear here.",
}  # fmt: skip


def next_step(what: str, data_dir: Path | None = None) -> str:
    """What the empty page says: what to run on a fresh install, what it waits for once an
    event log exists (a demo or a by-hand run under way)."""
    started = data_dir is not None and (Path(data_dir) / "log").is_dir()
    return UNDER_WAY[what] if started else NEXT_STEPS[what]


@dataclass(frozen=True)
class Sources:
    """Where the data lives (from ``pipeline.config.Settings``, i.e. ``CHURN_*`` env vars)."""

    store_url: str
    mlflow_uri: str
    data_dir: Path
    mlflow_ui: str = MLFLOW_UI
    prefect_ui: str = PREFECT_UI
    refresh_s: float = 5.0
    high_risk: str | None = None  # the stream's high-risk rule (CHURN_STREAM_HIGH_RISK; None: the default)
    stream_group: str = "churn-stream"  # whose champion export gives the base rate
    stale_after_s: float | None = None  # None: STALE_TICKS metric intervals
    currency: str = "USD"  # of the plan prices (CHURN_CURRENCY)
    # the stream's drift alert levels and retrain cooldown (CHURN_DRIFT_*), as the stream reads them
    drift_warning: float = 0.2
    drift_critical: float = 0.4
    retrain_cooldown_hours: float = 24.0
    problem: str | None = None  # a drift setting the stream would refuse: shown, defaults drawn

    @classmethod
    def from_env(cls) -> Sources:
        from pipeline.config import load_settings
        from pipeline.drift.config import DriftConfig
        from pipeline.errors import ConfigError

        s = load_settings()
        problem = None
        try:
            drift = DriftConfig.from_settings(s)
        except ConfigError as exc:  # the stream refuses to start on these: say so, draw the defaults
            drift, problem = DriftConfig(), str(exc)
        return cls(
            currency=s.currency,
            drift_warning=drift.share_warning,
            drift_critical=drift.share_critical,
            retrain_cooldown_hours=drift.retrain_cooldown_hours,
            problem=problem,
            store_url=s.resolved_store_url,
            mlflow_uri=s.resolved_mlflow_uri,
            data_dir=s.data_dir,
            # set by `churn up` (churn.stack); else the ports of the settings
            mlflow_ui=os.environ.get("CHURN_MLFLOW_UI_URL")
            or f"http://127.0.0.1:{getattr(s, 'mlflow_port', 5000)}",
            prefect_ui=os.environ.get("CHURN_PREFECT_UI_URL")
            or f"http://127.0.0.1:{getattr(s, 'prefect_port', 4200)}",
            refresh_s=float(os.environ.get("CHURN_DASHBOARD_REFRESH_S", "5")),
            high_risk=s.stream_high_risk,
            stale_after_s=float(v) if (v := os.environ.get("CHURN_DASHBOARD_STALE_AFTER_S")) else None,
        )


def _sqlite_missing(url: str) -> bool:
    """True for a ``sqlite:///file`` URL whose file does not exist (never create it)."""
    if not url.startswith("sqlite:///"):
        return False
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return path not in ("", ":memory:") and not Path(path).exists()


def open_store(src: Sources) -> Any | None:
    """The store, or None when a SQLite store was never created (fresh install)."""
    if _sqlite_missing(src.store_url):
        return None
    from pipeline.store import Store

    return Store(src.store_url, read_only=True)


# -- stream ---------------------------------------------------------------------------------
STREAM_COLUMNS = ["time", "events_per_s", "events", "lag", "lag_seconds", "consumers",
                  "batch_p50_ms", "batch_p95_ms", "batch_p99_ms", "dead_letters"]  # fmt: skip


def tick_seconds(metrics: pd.DataFrame) -> float:
    """The workers' metric cadence: median gap between ticks of one (worker, partition)."""
    if metrics.empty:
        return 1.0
    gaps = (
        metrics.sort_values("time")
        .groupby(["worker", "partition"])["time"]
        .diff()
        .dt.total_seconds()
        .dropna()
    )
    gaps = gaps[gaps > 0]
    return float(gaps.median()) if len(gaps) else 1.0


def stream_timeseries(metrics: pd.DataFrame, points: int = 150) -> pd.DataFrame:
    """Per-partition metric ticks -> one row per time bucket for the whole group.

    Buckets are at least one tick long (workers tick at different instants). Throughput =
    events in the bucket / bucket seconds; lag = sum over partitions of each one's last
    lag in the bucket; lag seconds = the worst partition; consumers = distinct workers;
    latency p50 = mean, p95/p99 = worst worker's; dead letters summed.
    """
    if metrics.empty:
        return pd.DataFrame(columns=STREAM_COLUMNS)
    m = metrics.sort_values("time")
    span = (m["time"].iloc[-1] - m["time"].iloc[0]).total_seconds()
    tick = max(tick_seconds(m), 1.0)
    bucket = tick * max(1, int(np.ceil(span / points / tick)))  # whole ticks: no aliasing
    freq = pd.Timedelta(seconds=round(bucket, 3))
    m = m.assign(bucket=m["time"].dt.floor(freq))
    last = m.groupby(["bucket", "partition"]).last(skipna=False)
    # as of each bucket's end, every partition's newest tick (carried forward while it has not
    # ticked again): a bucket still filling in (the newest one) sums all partitions, and the
    # chart's last point is exactly what the tiles and the partition table show
    def as_of(col: str) -> pd.DataFrame:
        return last[col].unstack("partition").ffill()

    per = pd.DataFrame({
        "lag": as_of("lag").sum(axis=1, min_count=1),
        "lag_seconds": as_of("lag_seconds").max(axis=1),
        "consumers": as_of("worker").nunique(axis=1).astype(int),  # workers holding a partition
    })  # fmt: skip
    g = m.groupby("bucket").agg(
        events=("events", "sum"),
        batch_p50_ms=("batch_p50_ms", "mean"),
        batch_p95_ms=("batch_p95_ms", "max"),
        batch_p99_ms=("batch_p99_ms", "max"),
        dead_letters=("dead_letters", "sum"),
    )
    out = g.join(per)
    out["events_per_s"] = out["events"] / freq.total_seconds()
    out = out.reset_index().rename(columns={"bucket": "time"})
    return out[STREAM_COLUMNS]


@dataclass(frozen=True)
class StreamNow:
    """The stream right now: the newest tick of every partition, judged."""

    events_per_s: float
    total_lag: int
    lag_seconds: float | None
    consumers: int
    partitions: pd.DataFrame  # partition, lag, lag_seconds, status, worker, time
    alert: Alert
    last_tick: datetime | None
    window_events: int
    window_dead_letters: int
    # None: live (or no metrics yet); else how long ago the last tick was, beyond the limit:
    # the stream has stopped, its tiles show the last known values, marked stale
    stopped_for: timedelta | None = None
    stale_after_s: float | None = None  # the limit that was applied

    @property
    def holding(self) -> int:
        """Workers holding a partition by the newest ticks (what the partition table lists
        and the consumers chart ends on); ``consumers`` may add workers still starting."""
        return int(self.partitions["worker"].nunique()) if len(self.partitions) else 0

    @property
    def state(self) -> str:
        """``"none"`` (no metrics yet), ``"live"`` or ``"stale"`` (stopped)."""
        return "none" if self.last_tick is None else "stale" if self.stopped_for is not None else "live"

    def stopped_text(self) -> str:
        """'stream stopped 12 min ago' (for the banner); '' while live."""
        if self.stopped_for is None or self.last_tick is None:
            return ""
        return f"stream stopped {age_text(self.last_tick, self.last_tick + self.stopped_for)} ago"


def stream_now(
    latest: pd.DataFrame, window: pd.DataFrame, assignments: pd.DataFrame | None = None,
    now: datetime | None = None, stale_after_s: float | None = None,
) -> StreamNow:
    """KPIs and the alert from ``latest_metrics()``, the recent window and assignments.

    With ``now``: no tick for ``stale_after_s`` seconds (default :data:`STALE_TICKS` of the
    workers' metric interval) means the stream stopped: throughput is 0, consumers are the
    workers still assigned (none after a drain), the last lag stays (marked stale).
    """
    events = int(window["events"].fillna(0).sum()) if not window.empty else 0
    dead = int(window["dead_letters"].fillna(0).sum()) if not window.empty else 0
    if latest.empty:
        alert = assess(total_lag=0, lag_seconds=None)
        return StreamNow(0.0, 0, None, 0, latest, alert, None, events, dead)
    total_lag = int(latest["lag"].fillna(0).sum())
    secs = latest["lag_seconds"].dropna()
    lag_s = float(secs.max()) if len(secs) else None
    last_tick = latest["time"].max().to_pydatetime()
    limit = stale_after_s if stale_after_s is not None else STALE_TICKS * max(tick_seconds(window), 1.0)
    stopped = None if now is None or (now - last_tick).total_seconds() <= limit else now - last_tick
    workers = assignments if assignments is not None and not assignments.empty else None
    if stopped is not None:  # a stopped stream has only the workers still assigned, if any
        consumers = 0 if workers is None else len(workers)
    else:
        consumers = len(workers) if workers is not None else int(latest["worker"].nunique())
    statuses = {
        int(p): Status(s) for p, s in zip(latest["partition"], latest["status"], strict=True)
        if isinstance(s, str)
    }  # fmt: skip
    alert = assess(total_lag=total_lag, lag_seconds=lag_s, statuses=statuses,
                   dead_letters=dead, events=events, consumers=consumers)  # fmt: skip
    parts = latest[["partition", "lag", "lag_seconds", "status", "worker", "time"]].copy()
    parts["status"] = parts["status"].fillna("OK")
    if stopped is not None:
        parts["status"] = "STALE"
    return StreamNow(
        events_per_s=0.0 if stopped is not None else float(latest["events_per_s"].fillna(0).sum()),
        total_lag=total_lag,
        lag_seconds=lag_s,
        consumers=consumers,
        partitions=parts,
        alert=alert,
        last_tick=last_tick,
        window_events=events,
        window_dead_letters=dead,
        stopped_for=stopped,
        stale_after_s=limit,
    )


CATCHUP_MIN_LAG = 1_000  # records: below, it is a batch or two in flight, whatever else holds
CATCHUP_BACKLOG_S = 30.0  # a backlog that takes longer than this to work off at the current rate...
CATCHUP_EVENT_S = 600.0  # ...or this far behind in event time (the alerts' critical lag seconds)


def catching_up(lag: pd.Series | float, events_per_s: pd.Series | float,
                lag_seconds: pd.Series | float | None = None) -> pd.Series | bool:
    """Working off a backlog (a replay of history, a restart after downtime) rather than
    keeping up with live events: more than :data:`CATCHUP_MIN_LAG` records behind, and
    either :data:`CATCHUP_BACKLOG_S` of work at the current throughput or
    :data:`CATCHUP_EVENT_S` of event time.

    >>> catching_up(2_786_444, 59_924), catching_up(800, 1_000, 9e6), catching_up(20_000, 1_000, 2.0)
    (True, False, False)
    >>> catching_up(97_630, 21_000, 4_814_864.0)  # fast, but 56 days of history still to replay
    True
    """
    behind = lag > CATCHUP_BACKLOG_S * events_per_s
    if lag_seconds is not None:
        far = lag_seconds > CATCHUP_EVENT_S
        behind = behind | (far.fillna(False) if isinstance(far, pd.Series) else bool(far))
    return (lag > CATCHUP_MIN_LAG) & behind


@dataclass(frozen=True)
class Phase:
    """Where the stream is: ``kind`` "catching_up" / "steady" / "stopped" / "none".

    ``window`` is the part of the time series the tiles' sparklines and averages use: the
    steady buckets after the newest catch-up (so a catch-up spike does not flatten them), or
    the catch-up's own buckets while it lasts. ``label`` names that span for the tiles."""

    kind: str
    window: pd.DataFrame
    label: str
    text: str
    eta_s: float | None = None
    caught_up_at: datetime | None = None


def _drain_rate(ts: pd.DataFrame) -> float | None:
    """Records/s by which the lag fell since its peak in ``ts`` (None unless falling)."""
    lag = ts.dropna(subset=["lag"])
    if len(lag) < 2:
        return None
    peak = lag.loc[lag["lag"].idxmax()]
    dt = (lag["time"].iloc[-1] - peak["time"]).total_seconds()
    fall = float(peak["lag"] - lag["lag"].iloc[-1])
    return fall / dt if dt > 0 and fall > 0 else None


def stream_phase(now: StreamNow, ts: pd.DataFrame) -> Phase:
    """Catching up or steady, from the newest ticks (``now``) and the window's buckets (``ts``)."""
    from pipeline.humanize import count, duration

    if now.state == "none" or ts.empty:
        return Phase("none", ts, "", "")
    span_min = max(1, round((ts["time"].iloc[-1] - ts["time"].iloc[0]).total_seconds() / 60))
    whole = f"{span_min}-min"
    if now.state == "stale":
        return Phase("stopped", ts, whole, "")
    behind = ts["lag"].notna() & catching_up(ts["lag"], ts["events_per_s"], ts["lag_seconds"])
    if catching_up(now.total_lag, now.events_per_s, now.lag_seconds):
        start = ts.index[~behind][-1] + 1 if (~behind).any() else ts.index[0]
        window = ts.loc[start:]
        rate = _drain_rate(window)
        eta = now.total_lag / rate if rate else None
        lag_s = f", {duration(now.lag_seconds)} of event time" if now.lag_seconds else ""
        text = (f"Catching up: {count(now.total_lag)} records behind{lag_s}; "
                + (f"the lag falls by {count(rate)}/s, about {duration(eta)} to go." if eta
                   else "the lag is not falling yet."))
        return Phase("catching_up", window, "catch-up", text, eta_s=eta)
    if not behind.any():
        return Phase("steady", ts, whole, "")
    last_behind = ts.index[behind][-1]
    window = ts.loc[last_behind + 1:]
    at = ts.loc[window.index[0], "time"] if len(window) else ts["time"].iloc[-1]
    peak = ts.loc[behind, "lag_seconds"].max()
    steady_min = (ts["time"].iloc[-1] - at).total_seconds() / 60
    label = f"{steady_min:.0f}-min steady" if steady_min >= 1 else "steady"
    text = (f"Caught up at {at:%H:%M:%S} UTC after a catch-up (peak {count(ts.loc[behind, 'lag'].max())} "
            f"records{'' if pd.isna(peak) else ', ' + duration(peak)} behind); the tiles' sparklines and "
            "averages cover the steady part since.")
    return Phase("steady", window if len(window) else ts.tail(1), label, text,
                 caught_up_at=pd.Timestamp(at).to_pydatetime())


def load_stream(store: Any, window: timedelta = WINDOW, now: datetime | None = None,
                stale_after_s: float | None = None) -> tuple[StreamNow, pd.DataFrame, pd.DataFrame]:
    """(now, recent metric ticks, recent autoscaler decisions), anchored at the newest tick
    (not the wall clock, so a replayed or paused stream still shows its last window); ``now``
    (the wall clock, from the app) tells a stopped stream from a live one."""
    latest = store.latest_metrics()
    if latest.empty:
        empty = store.metrics_since(None).head(0)
        return stream_now(latest, empty), empty, store.decisions_since(None).head(0)
    since = latest["time"].max().to_pydatetime() - window
    metrics = store.metrics_since(since)
    decisions = store.decisions_since(since)
    return stream_now(latest, metrics, store.assignments(), now, stale_after_s), metrics, decisions


# -- scores ---------------------------------------------------------------------------------
def high_risk_threshold(store: Any, src: Sources) -> ResolvedThreshold:
    """The stream's high-risk rule resolved on the current scores, exactly as the stream's
    closing report resolves it (:func:`pipeline.stream.report.report_threshold`): the
    threshold line, the at-risk counts and the revenue at risk all use this."""
    from pipeline.errors import ConfigError
    from pipeline.highrisk import HighRiskRule
    from pipeline.stream.report import report_threshold

    try:
        return report_threshold(store, src.stream_group, src.high_risk, src.data_dir)
    except ConfigError as exc:  # a bad CHURN_STREAM_HIGH_RISK: the page says so, marks nobody
        return ResolvedThreshold(HighRiskRule(), None, problem=str(exc))


def high_risk_label(hr: ResolvedThreshold) -> str:
    """'High risk (≥ 0.045)' for a KPI tile; 'High risk' while unresolved."""
    return "High risk" if hr.threshold is None else f"High risk (≥ {hr.threshold:.3g})"


def format_reasons(raw: Any, top: int = 3) -> str:
    """Stored reasons (JSON list of {feature, contribution}) -> 'a (+0.41), b (+0.12)'."""
    if raw is None or (isinstance(raw, float) and np.isnan(raw)):
        return ""
    items = json.loads(raw) if isinstance(raw, str) else raw
    parts = []
    for r in list(items)[:top]:
        c = r.get("contribution")
        parts.append(r.get("feature", "?") if c is None else f"{r.get('feature', '?')} ({c:+.2f})")
    return ", ".join(parts)


def top_users_table(scores: pd.DataFrame) -> pd.DataFrame:
    """``current_scores()`` -> the table the Risk page shows."""
    cols = ["user_id", "risk", "reasons", "plan", "monthly_revenue", "partition",
            "model_version", "features_time"]  # fmt: skip
    if scores.empty:
        return pd.DataFrame(columns=cols)
    out = scores.copy()
    out["reasons"] = out["reasons"].map(format_reasons)
    return out[cols]


def user_score(store: Any, user_id: str) -> pd.DataFrame:
    """One user's current score row (active or not; empty if never scored): a keyed
    lookup instead of reading every score."""
    from sqlalchemy import select

    from pipeline.store import schema

    c = schema.scores.c
    cols = [col for col in c if col.name not in ("history_time", "history_risk")]
    return store._frame(select(*cols).where(c.user_id == user_id), ("features_time", "updated_at"))


def campaign_inputs(scores: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(risk, monthly revenue) of all scored users; a missing revenue is the default price."""
    risk = scores["risk"].to_numpy(dtype=np.float64)
    rev = pd.to_numeric(scores["monthly_revenue"], errors="coerce").fillna(DEFAULT_MONTHLY_REVENUE)
    return risk, rev.to_numpy(dtype=np.float64)


# -- registry -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RegistryView:
    versions: pd.DataFrame  # version, aliases, created, decision, reason, metrics columns...
    history: pd.DataFrame  # pipeline.registry.alias_history()
    champion: str | None
    challenger: str | None
    champion_since: datetime | None


class _Loading:
    def __repr__(self) -> str:
        return "LOADING"


LOADING: Any = _Loading()  # RegistryLoader.get(wait=False) before the first load finished


class RegistryLoader:
    """:func:`load_registry` off the page's critical path.

    The first load in a process imports MLflow and opens its store (~10 s cold on 2 busy
    cores, against ~0.1 s for the store's queries), so it runs in one background thread.
    ``get(uri, wait=False)`` never blocks: the newest view (even if older than ``ttl_s``,
    which starts a refresh) or ``LOADING``. A failed load gives None and ``error``.
    """

    def __init__(self, ttl_s: float = 30.0, load: Any = None) -> None:
        self.ttl_s = ttl_s
        self._load = load or load_registry
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="registry")
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, RegistryView | None]] = {}
        self._pending: dict[str, Future] = {}
        self.error: str | None = None

    def _run(self, uri: str) -> RegistryView | None:
        try:
            view, self.error = self._load(uri), None
        except Exception as exc:  # noqa: BLE001 - shown on the page, retried after ttl_s
            view, self.error = None, f"cannot read the MLflow registry {uri}: {type(exc).__name__}: {exc}"
        with self._lock:
            self._last[uri] = (time.monotonic(), view)
            self._pending.pop(uri, None)
        return view

    def get(self, uri: str, wait: bool = True) -> RegistryView | None:
        with self._lock:
            last = self._last.get(uri)
            fut = self._pending.get(uri)
            if fut is None and (last is None or time.monotonic() - last[0] > self.ttl_s):
                fut = self._pending[uri] = self._pool.submit(self._run, uri)
        if last is not None:
            return last[1]
        try:  # a missing registry answers in milliseconds: no "loading" flash for it
            return fut.result(timeout=None if wait else 0.25)
        except FutureTimeout:
            return LOADING


_LOADER: RegistryLoader | None = None
_LOADER_LOCK = threading.Lock()


def registry_loader() -> RegistryLoader:
    """The process-wide loader (Streamlit runs every session in one process)."""
    global _LOADER
    with _LOADER_LOCK:
        if _LOADER is None:
            _LOADER = RegistryLoader()
        return _LOADER


def _float(v: object) -> float:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def load_registry(uri: str) -> RegistryView | None:
    """Model versions with their gate metrics and the alias history; None if no registry."""
    from pipeline.mlflow_store import check_readable

    # MLflow's client builds a registry into any SQLite file it opens: an emptied one would
    # become a new, empty registry that training then silently starts over in (RegistryError:
    # shown on the page)
    if check_readable(uri) is not None:
        return None
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from pipeline import registry

    client = MlflowClient(tracking_uri=uri)
    try:
        found = client.search_model_versions(f"name='{registry.MODEL_NAME}'")
    except MlflowException:
        return None
    if not found:
        return None
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)  # alias_history() reads the process-wide URI
    try:
        history = registry.alias_history()
    finally:
        mlflow.set_tracking_uri(previous)
    # search results carry no aliases: read them from the registered model
    by_version: dict[str, list[str]] = {}
    for alias, v in (client.get_registered_model(registry.MODEL_NAME).aliases or {}).items():
        by_version.setdefault(str(v), []).append(alias)
    rows = []
    for mv in found:
        tags = dict(mv.tags or {})
        row = {
            "version": str(mv.version),
            "aliases": ", ".join(sorted(by_version.get(str(mv.version), []))),
            "created": pd.Timestamp(mv.creation_timestamp, unit="ms", tz=UTC),
            "candidate": tags.get("candidate", ""),
            "decision": tags.get("gate.decision", ""),
            "reason": tags.get("gate.reason", ""),
            "by": tags.get("gate.by", ""),
            "horizon_days": _float(tags.get("horizon_days")),
            "test_window": tags.get("test_window", ""),
            "gate_champion": tags.get("gate.champion_version", ""),
            "_tags": tags,
        }
        # test-window metrics: those the train flow tags (test_*), then the gate's own
        for k, v in sorted(tags.items(), key=lambda kv: kv[0].startswith("gate.")):
            for prefix in ("test_", "gate.challenger."):
                name = k.removeprefix(prefix)
                if k.startswith(prefix) and name not in ("window", "n", "positives"):
                    row[name] = _float(v)
        rows.append(row)
    windows = {r["version"]: r["test_window"] for r in rows}
    for r in rows:  # which window each gate number was measured on needs the champion's own window
        r["gate_windows"] = gate_windows(r["version"], r["_tags"], windows.get(r["gate_champion"]))
    rows = [{k: v for k, v in r.items() if k != "_tags"} for r in rows]
    versions = pd.DataFrame(rows).sort_values("version", key=lambda s: s.astype(int), ascending=False)
    champ = next((r["version"] for r in rows if "champion" in r["aliases"].split(", ")), None)
    chall = next((r["version"] for r in rows if "challenger" in r["aliases"].split(", ")), None)
    since = None
    if champ is not None:
        mine = history[(history["version"] == champ) & history["since"].notna()]
        since = (
            pd.Timestamp(mine["since"].iloc[-1]).to_pydatetime() if len(mine)
            else versions.loc[versions["version"] == champ, "created"].iloc[0].to_pydatetime()
        )  # fmt: skip
    return RegistryView(versions.reset_index(drop=True), history, champ, chall, since)


def _window_text(tags: dict[str, str]) -> str:
    w = tags.get("test_window", "")
    n, pos = _float(tags.get("test_n")), _float(tags.get("test_positives"))
    size = f" ({n:,.0f} users, {pos:,.0f} churners)" if n == n and pos == pos else ""
    return (f"test window {w.replace('..', ' to ')}" if w else "its training run's test window") + size


def gate_windows(version: str, tags: dict[str, str], champion_window: str | None = None) -> str:
    """Which window each of the gate's numbers was measured on (a version's tags): the
    challenger's test window, with the champion re-scored on the same rows -- so the
    champion's figure here differs from its own card (measured on *its* older test window).

    >>> print(gate_windows("3", {"gate.decision": "rejected", "gate.champion_version": "2",
    ...     "test_window": "2026-05-01..2026-05-20", "gate.challenger.lift_10": "4.89", "gate.champion.lift_10": "4.714"},
    ...     champion_window="2026-03-01..2026-03-20"))
    Both measured on v3's test window 2026-05-01 to 2026-05-20: v3 lift_10 4.890 vs champion v2 4.714 re-scored on the same rows (v2's own card shows its figures on its own test window 2026-03-01 to 2026-03-20, hence different numbers).
    """
    champ = tags.get("gate.champion_version", "")
    if not tags.get("gate.decision") or not champ:  # no comparison: its own card says its window
        return ""
    window = _window_text(tags)
    mine = tags.get("test_window", "")
    if champion_window and champion_window == mine:
        own = f"the same window as v{champ}'s own card"
    elif champion_window:
        own = (f"v{champ}'s own card shows its figures on its own test window "
               f"{champion_window.replace('..', ' to ')}, hence different numbers")
    else:
        own = f"v{champ}'s own card shows its figures on its own training test window"
    pairs = []
    for k, v in sorted(tags.items()):
        if k.startswith("gate.challenger."):
            m = k.removeprefix("gate.challenger.")
            other = tags.get(f"gate.champion.{m}")
            if other is not None:
                pairs.append(f"v{version} {m} {_float(v):.3f} vs champion v{champ} {_float(other):.3f}")
    if not pairs:  # refused or unscorable: nothing was measured for the champion
        return f"v{version}'s figures: on its {window}; the champion v{champ} was not scored (see the reason)."
    return f"Both measured on v{version}'s {window}: {'; '.join(pairs)} re-scored on the same rows ({own})."


_FLOW_RUN = re.compile(r"prefect flow run .*\(([0-9a-f-]{36})\)")


def service_answers(url: str, timeout_s: float = 0.5) -> bool:
    """True when an HTTP server answers at ``url`` (any status: it is up) within ``timeout_s``."""
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1: never via a proxy
    try:
        with opener.open(url, timeout=timeout_s):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, with an error page: the service runs
    except (OSError, ValueError):
        return False


def mlflow_version_url(mlflow_ui: str, version: str, name: str = "churn") -> str:
    """The MLflow UI page of a registered model version (it links to its training run)."""
    return f"{mlflow_ui.rstrip('/')}/#/models/{name}/versions/{version}"


def prefect_run_url(prefect_ui: str, by: object) -> str | None:
    """The Prefect UI page of the flow run that gated/promoted a version, when the
    version's ``gate.by``/promotion ``by`` names one ('... via prefect flow run x (id)')."""
    m = _FLOW_RUN.search(by) if isinstance(by, str) else None
    return None if m is None else f"{prefect_ui.rstrip('/')}/runs/flow-run/{m.group(1)}"


def alias_history_table(hist: pd.DataFrame) -> pd.DataFrame:
    """The alias history for people: no ``None`` (a first model has no previous champion; a
    promotion without a recorded actor says so).

    >>> alias_history_table(pd.DataFrame({"version": ["1"], "by": [None], "previous": [None]})).iloc[0].tolist()
    ['1', 'not recorded', 'none (first champion)']
    """
    out = hist.copy()
    if "previous" in out:
        out["previous"] = [f"v{p}" if isinstance(p, str | int) and str(p) not in ("", "None") else
                           "none (first champion)" for p in out["previous"]]
    if "by" in out:
        out["by"] = out["by"].map(lambda b: b if isinstance(b, str) and b else "not recorded")
    for col, missing in (("since", "not recorded"), ("until", "now (current)")):
        if col in out:  # Streamlit draws a missing time as "None": text instead
            t = pd.to_datetime(out[col], utc=True, errors="coerce", format="ISO8601")
            out[col] = [missing if pd.isna(x) else f"{x:%Y-%m-%d %H:%M}" for x in t]
    for col in ("reason", "scores"):
        if col in out:
            out[col] = out[col].map(lambda x: "" if x is None or (isinstance(x, float) and x != x) else x)
    return out


def scores_text(raw: object) -> str:
    """A promotion's scores (JSON object) -> 'roc_auc 0.805 · lift_10 5.62'."""
    try:
        scores = json.loads(raw) if isinstance(raw, str) else raw
        return " · ".join(f"{k} {float(v):.3g}" for k, v in dict(scores or {}).items())
    except (TypeError, ValueError):
        return "" if raw is None else str(raw)


def age_text(since: datetime | None, now: datetime) -> str:
    """'3 d 4 h', '5 h 2 min', '42 s' -- the champion's age for a KPI tile."""
    if since is None:
        return "—"
    s = max((now - since).total_seconds(), 0.0)
    if s >= 86_400:
        return f"{int(s // 86_400)} d {int(s % 86_400 // 3600)} h"
    if s >= 3600:
        return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"
    if s >= 60:
        return f"{int(s // 60)} min"
    return f"{int(s)} s"


# -- realised performance -------------------------------------------------------------------
REALISED_METRICS = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "lift_10": "lift @10 %", "ece": "ECE (calibration)",
                    "base_rate": "base rate (churned within the horizon)"}  # fmt: skip


@dataclass(frozen=True)
class RealisedView:
    rows: pd.DataFrame  # store.realised_performance(): day, model_version, metrics with _low/_high, n, ...
    note: str | None  # why there is nothing to show (no store, nothing matured yet, unreadable store)


def realised_note(horizon_days: int | None) -> str:
    """What the Model page says before any scoring day has matured."""
    h = f"{horizon_days} days" if horizon_days else "N days, the champion's label horizon"
    return (f"No realised performance yet: labels mature after the horizon ({h}). A score published at a "
            "day's midnight is judged by the cancels of the following horizon; the `realised/daily` "
            "deployment (or `python -c 'from flows.realised import realised; realised()'`) computes each "
            "day once it has matured.")


def load_realised(store: Any, horizon_days: int | None = None) -> RealisedView:
    """The realised-performance rows, or a note saying why there are none."""
    if store is None or not hasattr(store, "realised_performance"):
        return RealisedView(pd.DataFrame(), realised_note(horizon_days))
    try:
        rows = store.realised_performance()
    except Exception as exc:  # noqa: BLE001 - shown on the page instead of a traceback
        return RealisedView(pd.DataFrame(), f"cannot read realised performance: {type(exc).__name__}: {exc}")
    return RealisedView(rows, None if len(rows) else realised_note(horizon_days))


def horizon_of(versions: pd.DataFrame, version: str | None) -> int | None:
    """The ``horizon_days`` tag of a registry version (None if absent)."""
    if version is None or versions.empty or "horizon_days" not in versions:
        return None
    v = versions.loc[versions["version"] == version, "horizon_days"]
    try:
        return int(float(v.iloc[0])) if len(v) and v.iloc[0] == v.iloc[0] else None
    except (TypeError, ValueError):
        return None


# -- drift ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DriftView:
    runs: pd.DataFrame  # store.drift_runs() + ``share`` (= drifted_share), oldest first
    features: pd.DataFrame  # store.drift_features(): time, feature, score, threshold, drifted
    report: Path | None  # the newest full Evidently HTML report, if any
    warning: float  # drifted-share alert levels (pipeline.drift.config.DriftConfig)
    critical: float
    # every check that came due in the window, whatever its status (checked / skipped / failed)
    checks: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)


@dataclass(frozen=True)
class ChecksState:
    """What the Drift page says about its checks: ``kind`` is "none" (no check came due
    yet), "checked" (the newest check ran), "skipped" or "failing" (the newest one did
    not run); ``text`` says why; ``skipped``/``failed`` count them in the window."""

    kind: str
    text: str
    skipped: int = 0
    failed: int = 0


def checks_state(checks: pd.DataFrame) -> ChecksState:
    """From every check of the window (``store.drift_runs(status=None)``), oldest first.

    >>> checks_state(pd.DataFrame()).kind
    'none'
    >>> df = pd.DataFrame({"time": pd.to_datetime(["2026-03-01", "2026-03-02"], utc=True),
    ...                    "status": ["checked", "skipped"], "status_reason": [None, "window has 458 rows"]})
    >>> checks_state(df)
    ChecksState(kind='skipped', text='the newest check (2026-03-02 00:00 UTC) was skipped: window has 458 rows', skipped=1, failed=0)
    """
    if checks is None or checks.empty:
        return ChecksState("none", NEXT_STEPS["drift"])
    status = checks["status"] if "status" in checks else pd.Series(["checked"] * len(checks))
    skipped, failed = int((status == "skipped").sum()), int((status == "failed").sum())
    last = checks.iloc[-1]
    kind = str(last.get("status", "checked"))
    when = pd.Timestamp(last["time"]).strftime("%Y-%m-%d %H:%M UTC")
    if kind == "skipped":
        return ChecksState("skipped", f"the newest check ({when}) was skipped: {last['status_reason']}", skipped, failed)
    if kind == "failed":
        return ChecksState("failing", f"the newest check ({when}) failed: {last['status_reason']}", skipped, failed)
    return ChecksState("checked", f"the newest check ran at {when}", skipped, failed)


def _existing(path: object) -> Path | None:
    if not isinstance(path, str) or not path:
        return None
    p = Path(path)
    return p if p.is_file() else None


def latest_drift_report(data_dir: Path) -> Path | None:
    """The newest Evidently HTML report under ``<data_dir>/drift/`` (None if none)."""
    from pipeline.drift.reports import drift_dir, latest

    folder = drift_dir(data_dir)
    return latest(folder) if folder.is_dir() else None


_REPORT_TIME = re.compile(r"drift-(\d{8}T\d{6}Z)")


def report_time(path: Path | None) -> pd.Timestamp | None:
    """The check time in a report's name (``drift-20260301T120005Z-v7.html``), None if absent.

    >>> report_time(Path("drift-20260301T120005Z-v7.html"))
    Timestamp('2026-03-01 12:00:05+0000', tz='UTC')
    """
    m = _REPORT_TIME.search(path.name) if path is not None else None
    return None if m is None else pd.Timestamp(datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ"), tz=UTC)


def load_drift(store: Any, data_dir: Path, window: timedelta = timedelta(days=7),
               bands: tuple[float, float] | None = None) -> DriftView:
    """The drift checks of the newest ``window`` (anchored at the newest check) and the
    report to embed: the newest run's report if it rendered one, else the newest file.
    ``bands``: (warning, critical) drifted shares, those the stream uses (``Sources``)."""
    from pipeline.drift.config import DriftConfig

    warning, critical = bands or (DriftConfig().share_warning, DriftConfig().share_critical)
    runs = pd.DataFrame(columns=["time", "share", "level", "reasons", "report_path"])
    feats = pd.DataFrame(columns=["time", "feature", "score", "threshold", "drifted"])
    checks = pd.DataFrame(columns=["time", "status", "status_reason", "model_version", "rows"])
    if store is not None and hasattr(store, "drift_runs"):
        every = store.drift_runs(status=None)
        if not every.empty:
            since = every["time"].max().to_pydatetime() - window
            checks = every[every["time"] >= since].reset_index(drop=True)
            newest = checks[checks["status"] == "checked"]
            runs = newest.assign(share=lambda d: d["drifted_share"])
            feats = store.drift_features(since)
    # the newest report on disk or named by a check, whichever is newer (a check that names
    # none, or names a pruned file, never pins the page to an old one)
    named = [p for p in map(_existing, runs["report_path"]) if p] if not runs.empty else []
    found = [p for p in (latest_drift_report(data_dir), *named) if p is not None]
    report = max(found, key=lambda p: (p.name, p.stat().st_mtime)) if found else None
    return DriftView(runs.reset_index(drop=True), feats, report, warning, critical, checks)


RETRAIN_REQUESTED = "retrain requested"  # pipeline.drift.loop: the note a check stores
RETRAIN_SKIPPED = "retrain not requested"


def _retrain_status(row: pd.Series) -> str | None:
    """'requested' / 'skipped: <why>' / None (no retrain asked) for one drift run.

    Newer runs say it (a ``retrain_requested`` column, or the monitor's note among the
    reasons); a critical run of an older store that says neither counts as requested
    (every critical check asked, unless inside the cooldown)."""
    flag = row.get("retrain_requested")
    if isinstance(flag, bool | np.bool_):
        return "requested" if flag else None
    reasons = row.get("reasons")
    reasons = [str(r) for r in reasons] if isinstance(reasons, list | tuple | np.ndarray) else []
    for r in reasons:
        if r.startswith(RETRAIN_REQUESTED):
            return "requested"
        if r.startswith(RETRAIN_SKIPPED):
            return "skipped" + r.removeprefix(RETRAIN_SKIPPED)
    return "requested" if row.get("level") == "Critical" else None


def retrain_events(runs: pd.DataFrame, versions: pd.DataFrame | None = None) -> pd.DataFrame:
    """The drift checks that asked for a retrain (or would have, but for the cooldown):
    the requests first, newest first, each with the gate's outcome of the version trained
    after it (``versions``: ``RegistryView.versions``); then the skipped ones, newest first.
    Columns: time, model version, status, outcome, drifted share, reasons, report."""
    cols = ["time", "model_version", "status", "outcome", "share", "reasons", "report_path"]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    status = runs.apply(_retrain_status, axis=1) if len(runs) else pd.Series(dtype=object)
    out = runs.assign(status=status)[status.notna()].copy()
    out["reasons"] = out["reasons"].map(
        lambda r: "; ".join(x for x in map(str, r) if not x.startswith((RETRAIN_REQUESTED, RETRAIN_SKIPPED)))
        if isinstance(r, list | tuple | np.ndarray) else r
    )
    out["outcome"] = [gate_outcome(t, versions) if st == "requested" else ""
                      for t, st in zip(out["time"], out["status"], strict=True)]  # fmt: skip
    out["_skipped"] = out["status"] != "requested"
    out = out.sort_values(["_skipped", "time"], ascending=[True, False])
    return out[cols].reset_index(drop=True)


def gate_outcome(requested_at: pd.Timestamp, versions: pd.DataFrame | None) -> str:
    """What came of a retrain request: the first version registered after it and the gate's
    decision ('v3 rejected: lift_10 4.89 < champion 4.71'), or that none is registered yet.

    >>> v = pd.DataFrame({"version": ["2", "3"], "created": pd.to_datetime(["2026-03-01", "2026-03-05"], utc=True),
    ...                   "decision": ["promoted", "rejected"], "reason": ["first model", "lift_10 4.89 < champion 4.71"]})
    >>> gate_outcome(pd.Timestamp("2026-03-04", tz="UTC"), v)
    'v3 rejected: lift_10 4.89 < champion 4.71'
    >>> gate_outcome(pd.Timestamp("2026-03-06", tz="UTC"), v)
    'no version registered since (training runs, or did not start)'
    """
    if versions is None or versions is LOADING:
        return "…"
    if versions.empty or "created" not in versions:
        return "no version registered since (training runs, or did not start)"
    after = versions[versions["created"] >= requested_at].sort_values("created")
    if after.empty:
        return "no version registered since (training runs, or did not start)"
    v = after.iloc[0]
    return f"v{v['version']} {v['decision'] or 'not gated yet'}" + (f": {v['reason']}" if v["reason"] else "")


DRIFT_ALERT_WINDOW = timedelta(hours=24)  # an older drift check no longer colours the banner


def with_drift(alert: Alert, runs: pd.DataFrame) -> Alert:
    """The banner: the worse of the stream's alert and the newest drift check's level.

    ``runs`` are drift runs oldest first (``store.drift_runs(since=...)``). A Healthy
    check changes nothing; a Warning or Critical one adds its first reason, worst first.

    >>> from pipeline.autoscale.alerts import Alert, Level
    >>> ok = Alert(Level.HEALTHY, ("lag 0, 0 s behind",))
    >>> runs = pd.DataFrame({"level": ["Critical"], "model_version": ["2"], "drifted_share": [0.6],
    ...                      "reasons": [["60% of features drifted >= critical 40%"]]})
    >>> with_drift(ok, runs)
    Alert(level=<Level.CRITICAL: 'Critical'>, reasons=('drift of v2: 60% of features drifted >= critical 40%', 'lag 0, 0 s behind'))
    """
    if runs is None or runs.empty:
        return alert
    last = runs.iloc[-1]
    try:
        level = Level(str(last["level"]))
    except ValueError:
        return alert
    if level is Level.HEALTHY:
        return alert
    reasons = last.get("reasons")
    if isinstance(reasons, str):
        try:
            reasons = json.loads(reasons)
        except ValueError:
            reasons = [reasons]
    first = reasons[0] if isinstance(reasons, list | tuple) and reasons else f"{float(last['drifted_share']):.0%} of features drifted"
    text = f"drift of v{last['model_version']}: {first}"
    if level.rank > alert.level.rank:
        return Alert(level, (text, *alert.reasons))
    return Alert(alert.level, (*alert.reasons, text))


# -- retrain decisions (drift episodes, issue 18) --------------------------------------------
DECISION_OUTCOMES = ("requested", "sent", "failed to send", "skipped: cooldown", "skipped: no requester",
                     "episode closed", "episode resolved", "gate promoted", "gate rejected")  # pipeline.drift.episodes.OUTCOMES + the gate


def decision_table(decisions: pd.DataFrame, episodes: pd.DataFrame, versions: Any = None) -> pd.DataFrame:
    """The Drift page's decision table: what reached (or tried to reach) the orchestrator and
    the outcomes first, then deferrals and openings; newest first within each; with the
    episode's onset and status beside each decision. A sent request carries the gate's outcome
    of the first version registered after it (``versions``: ``RegistryView.versions``)."""
    cols = ["time", "decision", "outcome", "reason", "due", "run", "model_version", "onset", "episode"]
    if decisions is None or decisions.empty:
        return pd.DataFrame(columns=cols)
    d = decisions.copy()
    eps = episodes.set_index("episode_id") if episodes is not None and not episodes.empty else None
    d["onset"] = d["episode_id"].map(eps["onset"]) if eps is not None else pd.NaT
    d["episode"] = d["episode_id"].map(eps["status"]) if eps is not None else None
    d["outcome"] = [gate_outcome(pd.Timestamp(at), versions) if kind == "sent" else ""
                    for kind, at in zip(d["decision"], d["recorded_at"], strict=True)]  # fmt: skip
    d["_outcome"] = ~d["decision"].isin(DECISION_OUTCOMES)  # False (outcomes) sorts first
    d = d.sort_values(["_outcome", "time", "recorded_at"], ascending=[True, False, False], kind="stable")
    return d[cols].reset_index(drop=True)


def load_decisions(store: Any, versions: Any = None) -> pd.DataFrame:
    """:func:`decision_table` from the store (empty for a store without the tables)."""
    if store is None or not hasattr(store, "retrain_decisions"):
        return decision_table(pd.DataFrame(), pd.DataFrame())
    return decision_table(store.retrain_decisions(), store.drift_episodes(), versions)
