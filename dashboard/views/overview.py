"""Overview: the alert banner and the headline KPIs, refreshed live."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from dashboard import data, ui

src = ui.sources()
st.title("Churn Intelligence")
st.caption("Real-time churn scoring: stream health, risk and money at stake.")

SPARK_POINTS = 90


def _tiles(ts: pd.DataFrame, phase: data.Phase) -> tuple[dict[str, str | None], dict[str, list]]:
    """Each live tile's delta line and sparkline over the phase's own span (the steady part
    after a catch-up, or the catch-up while it lasts), so neither flattens the other."""
    w = phase.window
    if w.empty:
        return {}, {}
    name = phase.label
    peak_s = w["lag_seconds"].max()
    lo, hi = int(w["consumers"].min()), int(w["consumers"].max())
    delta = {
        "events": f"{name} avg {ui.fmt_rate(w['events_per_s'].mean())}",
        "lag": f"{name} peak {ui.fmt_int(w['lag'].max())}",
        "lag_s": None if pd.isna(peak_s) else f"{name} peak {ui.fmt_duration(peak_s)}",
        "consumers": f"{name} range {lo}–{hi}" if lo != hi else f"{name}: {lo} throughout",
    }  # fmt: skip
    tail = w.tail(SPARK_POINTS)
    spark = {
        "events": tail["events_per_s"].round(1).tolist(),
        "lag": tail["lag"].fillna(0).tolist(),
        "lag_s": tail["lag_seconds"].fillna(0).round(1).tolist(),
        "consumers": tail["consumers"].tolist(),
    }  # fmt: skip
    return delta, {k: v for k, v in spark.items() if len(v) >= 2}


@st.fragment(run_every=src.refresh_s)
def live() -> None:
    store = ui.store(src)
    reg = ui.registry(src.mlflow_uri, wait=False)  # never block the page on MLflow's import
    if store is None:
        ui.empty_state("store")
    else:
        now, metrics, _ = data.load_stream(store, now=datetime.now(UTC), stale_after_s=src.stale_after_s)
        ts = data.stream_timeseries(metrics)
        phase = data.stream_phase(now, ts)
        peak, spark = _tiles(ts, phase)
        hr = data.high_risk_threshold(store, src)
        summary = store.score_summary(high_risk=hr.cut)
        if now.last_tick is None:
            ui.empty_state("store", "The store exists but holds no stream metrics yet.")
        else:  # the stream's health and the newest drift check: one banner
            runs = store.drift_runs(since=datetime.now(UTC) - data.DRIFT_ALERT_WINDOW)
            ui.banner(data.with_drift(now.alert, runs), now)
        ui.phase_note(phase)
        stale = ui.stale_note(now)  # a stopped stream: its live tiles say so instead of a window figure
        c = st.columns(4)
        c[0].metric("Events / s", ui.fmt_rate(now.events_per_s), chart_data=spark.get("events"),
                    chart_type="area", delta=stale or peak.get("events"), delta_color="off" if stale else "primary",
                    delta_arrow="off", help=f"{now.events_per_s:,.1f} events/s over the newest ticks")
        c[1].metric("Total lag", ui.fmt_int(now.total_lag), chart_data=spark.get("lag"),
                    delta=stale or peak.get("lag"), delta_color="off" if stale else "violet", delta_arrow="off",
                    help=f"{now.total_lag:,} records: sum over partitions of log-end minus committed offset")
        c[2].metric("Lag (event time)", ui.fmt_duration(now.lag_seconds),
                    chart_data=spark.get("lag_s"), delta=stale or peak.get("lag_s"),
                    delta_color="off" if stale else "orange", delta_arrow="off",
                    help="Event time of the newest record minus that of the last processed one "
                         "(worst partition)" + ("" if now.lag_seconds is None else f": {now.lag_seconds:,.1f} s"))
        # the workers holding partitions: what the partition table lists and the chart ends on
        shown = now.consumers if now.state == "stale" else now.holding
        starting = now.consumers - now.holding if now.state == "live" and now.consumers > now.holding else 0
        c[3].metric("Active consumers", shown, chart_data=spark.get("consumers"),
                    chart_type="bar", delta=stale or (f"+{starting} starting, no partition yet" if starting
                                                      else peak.get("consumers")),
                    delta_color="off" if stale else "primary", delta_arrow="off",
                    help="Workers holding at least one partition (the Stream page's table and chart)")
        c = st.columns(4)
        churned = getattr(summary, "churned_users", 0)
        c[0].metric("Users scored", ui.fmt_int(summary.users),
                    delta=f"{ui.fmt_int(churned)} cancelled, not counted" if churned else None,
                    delta_color="off", delta_arrow="off",
                    help=f"{summary.users:,} active subscribers with a current score (users who cancelled "
                         "keep their row but are not at risk any more)")
        share = summary.high_risk_users / summary.users if summary.users else 0.0
        c[1].metric(data.high_risk_label(hr), ui.fmt_int(summary.high_risk_users),
                    delta=f"{share:.1%} of users", delta_color="off", delta_arrow="off", help=hr.text())
        c[2].metric("Revenue at risk / month", ui.fmt_money(summary.expected_monthly_loss, src.currency),
                    help=f"Σ p(churn) × monthly revenue over the active scored users, in {src.currency} "
                         "(CHURN_CURRENCY)")
        if reg is data.LOADING:
            c[3].metric("Champion model", "…", help="Reading the MLflow registry")
        elif reg is None or reg.champion is None:
            c[3].metric("Champion model", "none", help=data.next_step("registry", src.data_dir))
        else:
            c[3].metric("Champion model", f"v{reg.champion}",
                        delta=f"age {data.age_text(reg.champion_since, datetime.now(UTC))}",
                        delta_color="off", delta_arrow="off")
        st.caption(hr.text())
        if now.last_tick is not None:
            st.caption(f"Last metrics tick {now.last_tick:%Y-%m-%d %H:%M:%S} UTC · newest "
                       f"features {summary.features_time:%Y-%m-%d %H:%M} UTC · "
                       f"models scoring: {', '.join(summary.model_versions) or '—'}"
                       if summary.features_time else
                       f"Last metrics tick {now.last_tick:%Y-%m-%d %H:%M:%S} UTC")
    if reg is None:
        ui.empty_state("registry")


live()
