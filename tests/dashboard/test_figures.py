"""The pure figure builders and data helpers: DataFrame in, figure / frame out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from dashboard import data, figures
from pipeline.autoscale.alerts import Level
from pipeline.revenue import Campaign, sweep

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def ticks(n: int = 24, partitions: int = 2, workers: int = 2, tick_s: int = 5) -> pd.DataFrame:
    rows = []
    for k in range(n):
        for p in range(partitions):
            rows.append({
                "time": pd.Timestamp(T0 + timedelta(seconds=k * tick_s)), "worker": f"w{p % workers}",
                "partition": p, "lag": 100 * k + p, "lag_seconds": float(k), "status": "OK",
                "events": 50, "events_per_s": 10.0, "batch_p50_ms": 10.0 + p,
                "batch_p95_ms": 20.0 + p, "batch_p99_ms": 30.0 + p, "dead_letters": k % 2,
            })  # fmt: skip
    return pd.DataFrame(rows)


def test_stream_timeseries_sums_partitions_per_tick() -> None:
    ts = data.stream_timeseries(ticks())
    assert len(ts) == 24
    last = ts.iloc[-1]
    assert last["lag"] == 2300 + 2301  # both partitions' last lag
    assert last["events_per_s"] == pytest.approx(100 / 5)  # 2 x 50 events over a 5 s tick
    assert last["consumers"] == 2
    assert last["batch_p95_ms"] == 21.0 and last["batch_p50_ms"] == 10.5
    assert ts["dead_letters"].sum() == 2 * 12


def test_stream_timeseries_buckets_long_windows() -> None:
    ts = data.stream_timeseries(ticks(n=600), points=100)
    assert len(ts) <= 101
    total = ticks(n=600)["events"].sum()
    bucket_s = (ts["time"].iloc[1] - ts["time"].iloc[0]).total_seconds()
    assert (ts["events_per_s"] * bucket_s).sum() == pytest.approx(total)  # no event lost


def test_stream_now_judges_the_newest_ticks() -> None:
    m = ticks()
    latest = m[m["time"] == m["time"].max()].copy()
    latest.loc[latest["partition"] == 1, "status"] = "STALL"
    now = data.stream_now(latest, m)
    assert now.total_lag == 4601 and now.consumers == 2 and now.lag_seconds == 23.0
    assert now.alert.level is Level.CRITICAL
    assert any("partition 1 STALL" in r for r in now.alert.reasons)
    empty = data.stream_now(latest.head(0), m.head(0))
    assert empty.alert.level is Level.HEALTHY and empty.last_tick is None


def test_format_reasons() -> None:
    raw = json.dumps([{"feature": "failed_payments_30d", "contribution": 0.41},
                      {"feature": "days_idle", "contribution": -0.05}])  # fmt: skip
    assert data.format_reasons(raw) == "failed_payments_30d (+0.41), days_idle (-0.05)"
    assert data.format_reasons(None) == "" and data.format_reasons(float("nan")) == ""


def test_age_text() -> None:
    assert data.age_text(T0, T0 + timedelta(days=2, hours=5)) == "2 d 5 h"
    assert data.age_text(T0, T0 + timedelta(minutes=5, seconds=3)) == "5 min"
    assert data.age_text(None, T0) == "—"


def test_sqlite_missing_never_creates(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'nope' / 'churn.db'}"
    src = data.Sources(store_url=url, mlflow_uri=url, data_dir=tmp_path)
    assert data.open_store(src) is None and data.load_registry(url) is None
    assert list(tmp_path.iterdir()) == []


def test_an_emptied_registry_is_shown_as_an_error_and_never_built_into(tmp_path, monkeypatch) -> None:
    """Opening the page must not turn a 0-byte mlflow.db into a new, empty registry that
    `churn train` would then silently start over in."""
    from pipeline import mlflow_store

    monkeypatch.setattr(mlflow_store, "CREATING_GRACE_S", 0.1)
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"")
    loader = data.RegistryLoader(load=data.load_registry)
    assert loader.get(f"sqlite:///{db}") is None
    assert loader.error and f"{db} is empty (0 bytes)" in loader.error and "restore it from a backup" in loader.error
    assert db.read_bytes() == b""


def test_latest_drift_report(tmp_path) -> None:
    assert data.latest_drift_report(tmp_path) is None
    (tmp_path / "drift").mkdir()
    for name in ("drift-20261127T110000Z-v2.html", "drift-20261127T120000Z-v2.html"):
        (tmp_path / "drift" / name).write_text("<html></html>")
    assert data.latest_drift_report(tmp_path).name == "drift-20261127T120000Z-v2.html"
    view = data.load_drift(None, tmp_path)  # no store yet: the files still show
    assert view.runs.empty and view.report is not None and view.warning < view.critical


def test_retrain_events_are_the_critical_checks() -> None:
    runs = pd.DataFrame({"time": [pd.Timestamp(T0), pd.Timestamp(T0 + timedelta(minutes=10))],
                         "model_version": ["2", "2"], "share": [0.1, 0.5],
                         "level": ["Healthy", "Critical"], "reasons": [[], ["50% drifted", "x"]],
                         "report_path": [None, None]})  # fmt: skip
    ev = data.retrain_events(runs)
    assert ev["reasons"].tolist() == ["50% drifted; x"]


def _has_data(fig: go.Figure) -> bool:
    return len(fig.data) > 0 and not any("no data" in (a.text or "") for a in fig.layout.annotations)


def test_stream_figures() -> None:
    m = ticks()
    ts = data.stream_timeseries(m)
    latest = m[m["time"] == m["time"].max()]
    decisions = pd.DataFrame({"time": [ts["time"].iloc[5], ts["time"].iloc[9]], "current": [2, 3],
                              "desired": [3, 3], "action": ["scale_up", "hold"],
                              "reason": ["lag 20,000 > 10,000 x 2", "within tolerance"]})  # fmt: skip
    for fig in (figures.throughput_figure(ts), figures.lag_figure(ts), figures.latency_figure(ts),
                figures.dead_letters_figure(ts), figures.partition_lag_figure(latest),
                figures.consumers_figure(ts, decisions)):  # fmt: skip
        assert _has_data(fig), fig.layout.title.text
    lag = figures.lag_figure(ts)
    assert lag.data[1].yaxis == "y2"  # seconds on their own axis
    cons = figures.consumers_figure(ts, decisions)
    assert [t.name for t in cons.data] == ["consumers", "scale_up", "hold"]
    assert any("lag 20,000" in a.text for a in cons.layout.annotations)  # the reason is shown
    part = figures.partition_lag_figure(latest.assign(status=["OK", "STALL"]))
    assert {t.name for t in part.data} == {"OK", "STALL"}
    assert part.data[1].marker.color == figures.STATUS_COLORS["STALL"]


def test_every_builder_survives_empty_frames() -> None:
    e = pd.DataFrame(columns=data.STREAM_COLUMNS)
    figs = [
        figures.throughput_figure(e), figures.lag_figure(e), figures.latency_figure(e),
        figures.dead_letters_figure(e),
        figures.partition_lag_figure(pd.DataFrame(columns=["partition", "lag", "status"])),
        figures.consumers_figure(e, pd.DataFrame(columns=["time", "action"])),
        figures.risk_histogram_figure(pd.DataFrame(columns=["bin_start", "bin_end", "users"]), .5),
        figures.user_history_figure(pd.DataFrame(columns=["time", "risk"]), "u1", .5),
        figures.roi_curve_figure(pd.DataFrame()),
        figures.drift_share_figure(pd.DataFrame(columns=["time", "share"]), .3, .5),
        figures.drift_heatmap_figure(pd.DataFrame(columns=["time", "feature", "score"])),
    ]  # fmt: skip
    for fig in figs:
        assert isinstance(fig, go.Figure) and not _has_data(fig)
        assert any("no" in a.text for a in fig.layout.annotations)


def test_risk_histogram_marks_threshold() -> None:
    edges = np.linspace(0, 1, 11)
    hist = pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:], "users": range(10)})
    fig = figures.risk_histogram_figure(hist, 0.5)
    colors = list(fig.data[0].marker.color)
    assert colors[:5] == [figures.CYAN] * 5 and colors[5:] == [figures.RED] * 5
    assert fig.layout.shapes[0].x0 == 0.5


def test_user_history_figure() -> None:
    h = pd.DataFrame({"time": [pd.Timestamp(T0), pd.Timestamp(T0 + timedelta(hours=1))],
                      "risk": [0.2, 0.7], "model_version": ["1", "2"]})  # fmt: skip
    fig = figures.user_history_figure(h, "u7", 0.5)
    assert list(fig.data[0].y) == [0.2, 0.7] and "u7" in fig.layout.title.text


def test_roi_curve_marks_best_share() -> None:
    rng = np.random.default_rng(0)
    risk = rng.beta(1, 6, 500)
    table = sweep(risk, risk, np.full(500, 12.0), Campaign(), shares=[0.05, 0.1, 0.2, 0.5, 1.0])
    fig = figures.roi_curve_figure(table, 0.1)
    best = table.loc[table["net_value"].idxmax()]
    by_name = {t.name: t for t in fig.data if t.name}
    assert by_name[f"best K {best['top_share']:.0%}"].x[0] == pytest.approx(best["top_share"] * 100)
    assert by_name["ROI"].yaxis == "y2"
    gain, loss = fig.data[0], fig.data[1]  # shaded: net value above / below zero
    assert min(gain.y) >= 0 and max(loss.y) <= 0
    assert list(np.add(gain.y, loss.y)) == pytest.approx(list(table["net_value"]))


@pytest.mark.parametrize("cost", [0.5, 3.0, 40.0])  # mostly gains, a sign change, all losses
def test_roi_curve_puts_zero_net_value_and_zero_roi_at_one_height(cost: float) -> None:
    """Net value and ROI change sign together, so their twin axes share the zero line,
    and each axis still shows its whole curve."""
    rng = np.random.default_rng(1)
    risk = rng.beta(1, 6, 500)
    table = sweep(risk, risk, np.full(500, 12.0), Campaign(cost_per_contact=cost), shares=[0.05, 0.1, 0.2, 0.5, 1.0])
    layout = figures.roi_curve_figure(table).layout
    (lo, hi), (lo2, hi2) = layout.yaxis.range, layout.yaxis2.range
    assert -lo / (hi - lo) == pytest.approx(-lo2 / (hi2 - lo2), abs=1e-9)
    assert lo <= table["net_value"].min() and table["net_value"].max() <= hi
    assert lo2 <= table["roi"].min() and table["roi"].max() <= hi2


def test_stream_figures_say_when_all_is_quiet() -> None:
    parts = pd.DataFrame({"partition": [0, 1], "lag": [0, 0], "lag_seconds": [0.0, 0.0],
                          "status": ["OK", "OK"], "worker": ["w0", "w0"]})
    fig = figures.partition_lag_figure(parts)
    assert "caught up" in fig.layout.annotations[0].text and tuple(fig.layout.yaxis.range) == (0, 1)
    ts = pd.DataFrame({"time": pd.to_datetime(["2026-03-01T00:00:00Z", "2026-03-01T00:00:05Z"]),
                       "dead_letters": [0, 0]})
    assert "no dead letters" in figures.dead_letters_figure(ts).layout.annotations[0].text


def test_risk_histogram_uses_a_log_axis_when_most_users_are_low_risk() -> None:
    edges = np.linspace(0, 1, 11)
    skewed = pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:],
                           "users": [5000, 300, 40, 9, 3, 2, 1, 0, 1, 0]})
    assert figures.risk_histogram_figure(skewed, 0.5).layout.yaxis.type == "log"
    even = skewed.assign(users=[10, 12, 9, 11, 8, 10, 12, 9, 11, 10])
    assert figures.risk_histogram_figure(even, 0.5).layout.yaxis.type != "log"


def test_drift_figures() -> None:
    t = [pd.Timestamp(T0 + timedelta(minutes=i)) for i in range(3)]
    runs = pd.DataFrame({"time": t, "share": [0.1, 0.4, 0.6]})
    fig = figures.drift_share_figure(runs, 0.3, 0.5)
    assert [s.y0 for s in fig.layout.shapes] == [0.3, 0.5]
    feats = pd.DataFrame({"time": t * 2, "feature": ["a"] * 3 + ["b"] * 3,
                          "score": [0.1, 0.2, 0.3, 0.0, 0.5, 0.9]})  # fmt: skip
    heat = figures.drift_heatmap_figure(feats)
    assert heat.data[0].z.shape == (2, 3)


def test_banner_is_the_worse_of_stream_health_and_the_newest_drift_check() -> None:
    from dashboard.data import with_drift
    from pipeline.autoscale.alerts import Alert, Level

    ok = Alert(Level.HEALTHY, ("lag 0, 0 s behind; partitions OK",))
    lagging = Alert(Level.CRITICAL, ("lag 600,000 >= critical 500,000",))
    runs = pd.DataFrame({"level": ["Critical", "Warning"], "model_version": ["1", "2"], "drifted_share": [0.5, 0.25],
                         "reasons": [["old"], '["25% of features drifted >= warning 20%"]']})  # fmt: skip
    assert with_drift(ok, runs.iloc[:0]) is ok  # no checks: the stream alone
    assert with_drift(ok, runs.assign(level="Healthy")) is ok  # a healthy check changes nothing
    warned = with_drift(ok, runs)  # the newest check (v2, Warning) counts, not the older Critical
    assert warned.level is Level.WARNING
    assert warned.reasons == ("drift of v2: 25% of features drifted >= warning 20%", ok.reasons[0])
    worse = with_drift(lagging, runs)  # the stream is worse: its reason stays first
    assert worse.level is Level.CRITICAL and worse.reasons[0] == lagging.reasons[0]
    assert worse.reasons[1].startswith("drift of v2")
    no_reasons = with_drift(ok, runs.assign(reasons=[None, None]))
    assert no_reasons.reasons[0] == "drift of v2: 25% of features drifted"
