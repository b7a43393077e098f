"""A stopped stream does not look live (issue 16 item 10): no tick for a few metric
intervals is its own state ("stream stopped N min ago"), tiles are marked stale, and lag 0
with no consumer is not Healthy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from dashboard import data
from pipeline.autoscale.alerts import Level, assess

from .test_app import metrics, run_page
from .test_figures import ticks


def _latest(m: pd.DataFrame) -> pd.DataFrame:
    return m[m["time"] == m["time"].max()].copy()


def test_no_tick_for_a_few_intervals_is_its_own_state() -> None:
    m = ticks(tick_s=5)  # ticks every 5 s; the last at T0 + 115 s
    last = m["time"].max().to_pydatetime()
    live = data.stream_now(_latest(m), m, now=last + timedelta(seconds=10))
    assert live.state == "live" and live.stopped_text() == "" and live.events_per_s == 20.0
    assert live.consumers == 2
    stopped = data.stream_now(_latest(m), m, now=last + timedelta(minutes=12))
    assert stopped.state == "stale" and stopped.stopped_for == timedelta(minutes=12)
    assert stopped.stopped_text() == "stream stopped 12 min ago"
    assert stopped.stale_after_s == 3 * 5.0  # STALE_TICKS intervals of the workers' cadence
    assert stopped.events_per_s == 0.0 and stopped.consumers == 0  # nothing flows, nobody consumes
    assert stopped.total_lag == live.total_lag  # the last known lag stays, marked stale
    assert set(stopped.partitions["status"]) == {"STALE"}
    assert data.stream_now(_latest(m), m, now=last + timedelta(seconds=16)).state == "stale"
    assert data.stream_now(_latest(m), m, now=last + timedelta(minutes=12), stale_after_s=3600).state == "live"
    assert data.stream_now(_latest(m).head(0), m.head(0), now=last).state == "none"


def test_lag_zero_without_a_consumer_is_not_healthy() -> None:
    alert = assess(total_lag=0, lag_seconds=0.0, consumers=0)
    assert alert.level is Level.WARNING and "no consumer running" in alert.reasons[0]
    assert assess(total_lag=0, lag_seconds=0.0, consumers=1).level is Level.HEALTHY
    assert assess(total_lag=5, lag_seconds=0.0, consumers=0).level is Level.CRITICAL


def _store_with_ticks(root, at: datetime) -> dict[str, str]:
    from pipeline.store import Store, StreamMetric

    (root / "data").mkdir(parents=True)
    with Store(f"sqlite:///{root / 'data' / 'churn.db'}") as store:
        store.record_metrics([
            StreamMetric(time=at - timedelta(seconds=5 * k), worker="w0", partition=p, lag=0, lag_seconds=0.0,
                         status="OK", events=500, events_per_s=100.0, dead_letters=0)
            for k in range(6) for p in range(2)
        ])  # fmt: skip
    return {"CHURN_DATA_DIR": str(root / "data"), "CHURN_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'm' / 'm.db'}"}


def test_the_pages_show_a_stopped_stream_as_stopped(tmp_path, use_env) -> None:
    use_env(_store_with_ticks(tmp_path, datetime.now(UTC) - timedelta(minutes=20)))
    for page, consumers in (("overview", "Active consumers"), ("stream", "Consumers")):
        at = run_page(page)
        text = "\n".join(m.value for m in at.markdown)
        assert 'data-level="Stale"' in text and "Stopped" in text, page
        assert "stream stopped 20 min ago" in text and 'data-level="Healthy"' not in text, page
        tiles = {m.label: m for m in at.metric}
        assert metrics(at)["Events / s"] == "0" and metrics(at)[consumers] == "0", page
        for label in ("Events / s", "Total lag", consumers):
            assert tiles[label].proto.delta.startswith("stale · stream stopped 20 min ago"), (page, label)


def test_the_pages_show_a_live_stream_as_live(tmp_path, use_env) -> None:
    use_env(_store_with_ticks(tmp_path, datetime.now(UTC)))
    at = run_page("stream")
    text = "\n".join(m.value for m in at.markdown)
    assert 'data-level="Healthy"' in text and 'data-level="Stale"' not in text
    assert metrics(at)["Events / s"] == "200" and metrics(at)["Consumers"] == "1"
