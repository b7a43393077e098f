"""What the dashboard says stays readable from catch-up to steady state (issue 19): compact
numbers, a catching-up state, consistent consumer counts, the newest drift report, retrain
requests first, currency and thresholds from the settings, links only to live services."""

from __future__ import annotations

import http.server
import socket
import threading
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from dashboard import data
from pipeline.config import load_settings
from pipeline.errors import ConfigError

from .test_figures import T0, ticks


# -- settings ------------------------------------------------------------------------------
def test_currency_setting_is_validated_and_normalised(monkeypatch) -> None:
    assert load_settings().currency == "USD"
    assert load_settings(currency="eur").currency == "EUR"
    monkeypatch.setenv("CHURN_CURRENCY", "gbp")
    assert load_settings().currency == "GBP"
    for bad in ("euro", "E1", "$"):
        with pytest.raises(ConfigError, match=r"currency=.*CHURN_CURRENCY"):
            load_settings(currency=bad)


def test_sources_take_currency_and_drift_bands_from_the_stream_settings(monkeypatch) -> None:
    monkeypatch.setenv("CHURN_CURRENCY", "EUR")
    monkeypatch.setenv("CHURN_DRIFT_SHARE_WARNING", "0.3")
    monkeypatch.setenv("CHURN_DRIFT_SHARE_CRITICAL", "0.6")
    monkeypatch.setenv("CHURN_DRIFT_RETRAIN_COOLDOWN_HOURS", "6")
    src = data.Sources.from_env()
    assert (src.currency, src.drift_warning, src.drift_critical, src.retrain_cooldown_hours) == ("EUR", 0.3, 0.6, 6)
    assert src.problem is None
    monkeypatch.setenv("CHURN_DRIFT_SHARE_WARNING", "0.9")  # above critical: the stream refuses it
    bad = data.Sources.from_env()
    assert bad.problem and "share" in bad.problem and (bad.drift_warning, bad.drift_critical) == (0.2, 0.4)


def test_drift_bands_come_from_the_caller(tmp_path) -> None:
    view = data.load_drift(None, tmp_path, bands=(0.25, 0.5))
    assert (view.warning, view.critical) == (0.25, 0.5)


# -- numbers in tiles ----------------------------------------------------------------------
def test_tile_numbers_are_short_at_any_magnitude(monkeypatch) -> None:
    from dashboard import ui

    monkeypatch.setattr(ui, "sources", lambda: data.Sources("sqlite://", "sqlite://", Path("."), currency="EUR"))
    assert ui.fmt_int(84_210) == "84,210" and ui.fmt_int(2_786_444) == "2.79M" and ui.fmt_int(None) == "—"
    assert ui.fmt_duration(14_196_908.0) == "164 d" and ui.fmt_duration(3.25) == "3.2 s"
    assert ui.fmt_rate(59_924.0) == "59.9k"
    assert ui.fmt_money(21_475.4) == "EUR 21,475" and ui.fmt_money(1_250_000, "USD") == "$1.25M"
    for v in (1, 999_999, 14_196_908, 7.3e11):
        assert len(ui.fmt_int(v)) <= 7 and len(ui.fmt_duration(v)) <= 12


# -- catch-up ------------------------------------------------------------------------------
def _replay_then_live(n_behind: int = 12, n_steady: int = 10) -> pd.DataFrame:
    """Per-partition ticks: a replay draining 2.4M records at 30k/s, then live at 50/s, lag ~20."""
    rows = []
    for k in range(n_behind + n_steady):
        behind = k < n_behind
        for p in range(2):
            rows.append({
                "time": pd.Timestamp(T0 + timedelta(seconds=k)), "worker": f"w{p}", "partition": p,
                "lag": (1_200_000 - 100_000 * k) if behind else 10, "lag_seconds": 9e6 - 6e5 * k if behind else 2.0,
                "status": "OK", "events": 15_000 if behind else 25, "events_per_s": 15_000.0 if behind else 25.0,
                "batch_p50_ms": 5.0, "batch_p95_ms": 9.0, "batch_p99_ms": 9.0, "dead_letters": 0,
            })  # fmt: skip
    return pd.DataFrame(rows)


def _now(m: pd.DataFrame) -> data.StreamNow:
    return data.stream_now(m[m["time"] == m["time"].max()], m)


def test_catching_up_is_its_own_state_with_an_eta() -> None:
    m = _replay_then_live()
    mid = m[m["time"] <= pd.Timestamp(T0 + timedelta(seconds=6))]
    phase = data.stream_phase(_now(mid), data.stream_timeseries(mid))
    assert phase.kind == "catching_up" and phase.label == "catch-up"
    # 2 partitions x 600k left, falling by 2 x 100k per second
    assert phase.text.startswith("Catching up: 1.20M records behind, 62 d of event time"), phase.text
    assert phase.eta_s == pytest.approx(6.0) and "200k/s, about 6.0 s to go" in phase.text


def test_after_a_catch_up_the_tiles_cover_the_steady_part_only() -> None:
    m = _replay_then_live()
    ts = data.stream_timeseries(m)
    phase = data.stream_phase(_now(m), ts)
    assert phase.kind == "steady" and phase.caught_up_at == (T0 + timedelta(seconds=12))
    assert len(phase.window) == 10 and phase.window["events_per_s"].max() == 50.0  # no catch-up spike
    assert phase.window["lag"].max() == 20 and "Caught up at 12:00:12 UTC" in phase.text
    steady_only = m[m["time"] >= pd.Timestamp(T0 + timedelta(seconds=12))]
    plain = data.stream_phase(_now(steady_only), data.stream_timeseries(steady_only))
    assert plain.kind == "steady" and plain.text == "" and len(plain.window) == 10


def test_the_newest_bucket_counts_every_partition_and_consumer() -> None:
    """The consumers chart ends on the tile's value even when the newest bucket has only
    some partitions' ticks so far (tile 2 beside a chart at 1 was the bug)."""
    m = ticks(n=5)
    partial = m[~((m["time"] == m["time"].max()) & (m["partition"] == 1))]  # w1 not ticked yet
    ts = data.stream_timeseries(partial)
    now = _now(m)
    assert ts["consumers"].iloc[-1] == now.holding == 2
    assert ts["lag"].iloc[-1] == 400 + 301  # partition 1's lag carried forward, not dropped


# -- drift page ----------------------------------------------------------------------------
def test_retrain_requests_come_first_with_the_gate_outcome() -> None:
    times = pd.to_datetime([f"2026-03-0{d} 12:00" for d in range(1, 7)], utc=True)
    reasons = [["retrain not requested: cooldown until x"]] * 6
    reasons[1] = ["60% drifted", "retrain requested (cooldown 24 h)"]
    runs = pd.DataFrame({"time": times, "model_version": "1", "level": "Critical", "share": 0.6,
                         "reasons": reasons, "report_path": None})
    versions = pd.DataFrame({"version": ["2"], "created": pd.to_datetime(["2026-03-02 13:00"], utc=True),
                             "decision": ["rejected"], "reason": ["lift_10 4.89 < champion 4.71"]})
    ev = data.retrain_events(runs, versions)
    assert ev["status"].iloc[0] == "requested" and ev["time"].iloc[0] == times[1]
    assert ev["outcome"].iloc[0] == "v2 rejected: lift_10 4.89 < champion 4.71"
    assert list(ev["time"].iloc[1:]) == sorted(ev["time"].iloc[1:], reverse=True)
    assert ev["reasons"].iloc[0] == "60% drifted" and (ev["outcome"].iloc[1:] == "").all()


def test_the_newest_report_is_embedded_not_the_first(tmp_path) -> None:
    folder = tmp_path / "drift"
    folder.mkdir()
    old, new = folder / "drift-20260301T120000Z-v1.html", folder / "drift-20260301T130000Z-v1.html"
    old.write_text("<html><head></head><body>old</body></html>")
    new.write_text("<html><head></head><body>new</body></html>")
    runs = pd.DataFrame({"time": pd.to_datetime(["2026-03-01 12:00", "2026-03-01 14:00"], utc=True),
                         "status": "checked", "drifted_share": 0.1, "level": "Healthy", "reasons": [[], []],
                         "report_path": [str(old), None]})  # fmt: skip

    class FakeStore:  # only the two reads load_drift makes
        def drift_runs(self, status=None):
            return runs

        def drift_features(self, since):
            return pd.DataFrame(columns=["time", "feature", "score", "threshold", "drifted"])

    view = data.load_drift(FakeStore(), tmp_path)
    assert view.report == new and data.report_time(new) == pd.Timestamp("2026-03-01 13:00", tz="UTC")


# -- model page ----------------------------------------------------------------------------
def test_gate_numbers_say_which_window_each_was_measured_on() -> None:
    tags = {"gate.decision": "rejected", "gate.champion_version": "1", "test_window": "2026-05-01..2026-05-20",
            "test_n": "1704", "test_positives": "48", "gate.challenger.roc_auc": "0.71",
            "gate.champion.roc_auc": "0.805", "gate.challenger.lift_10": "4.8918", "gate.champion.lift_10": "4.714"}
    text = data.gate_windows("3", tags, champion_window="2026-03-01..2026-03-20")
    assert "v3's test window 2026-05-01 to 2026-05-20 (1,704 users, 48 churners)" in text
    assert "v3 lift_10 4.892 vs champion v1 4.714" in text and "re-scored on the same rows" in text
    assert "v1's own card shows its figures on its own test window 2026-03-01 to 2026-03-20" in text
    same = data.gate_windows("3", tags, champion_window="2026-05-01..2026-05-20")
    assert "the same window as v1's own card" in same
    assert data.gate_windows("1", {"gate.decision": "promoted", "gate.champion_version": ""}) == ""  # first model
    assert data.gate_windows("4", {}) == ""


def test_alias_history_shows_no_none() -> None:
    hist = pd.DataFrame({"version": ["1", "3"], "since": ["2026-03-01T12:00:00+00:00", None],
                         "until": [None, None], "by": ["pytest", None], "reason": ["first model", None],
                         "previous": [None, "1"], "scores": ['{"roc_auc": 0.8}', None]})
    out = data.alias_history_table(hist)
    assert "None" not in out.astype(str).to_string() and "nan" not in out.astype(str).to_string().lower()
    assert out["previous"].tolist() == ["none (first champion)", "v1"]
    assert out["until"].tolist() == ["now (current)", "now (current)"]


def test_empty_pages_do_not_tell_a_running_demo_to_run_the_demo(tmp_path) -> None:
    assert "make demo" in data.next_step("store", tmp_path)  # fresh install: what to run
    (tmp_path / "log").mkdir()  # the demo simulated its history: training runs next
    for what in ("store", "registry", "drift"):
        text = data.next_step(what, tmp_path)
        assert "run `make demo`" not in text and "(or `make demo`)" not in text, text
        assert "waiting" in text or "next" in text or "once it runs" in text, text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_links_only_to_services_that_answer() -> None:
    dead = f"http://127.0.0.1:{_free_port()}"
    assert data.service_answers(dead, timeout_s=0.3) is False

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # an error page still means the service runs
            self.send_error(404)

        def log_message(self, *a) -> None:
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        assert data.service_answers(f"http://127.0.0.1:{srv.server_port}", timeout_s=2) is True
    finally:
        srv.shutdown()
        srv.server_close()
        t.join()
