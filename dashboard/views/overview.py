"""Overview: the alert banner and the headline KPIs, refreshed live."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from dashboard import data, ui

src = ui.sources()
st.title("Churn Intelligence")
st.caption("Real-time churn scoring: stream health, risk and money at stake.")


@st.fragment(run_every=src.refresh_s)
def live() -> None:
    store = ui.store(src)
    reg = ui.registry(src.mlflow_uri, wait=False)  # never block the page on MLflow's import
    if store is None:
        ui.empty_state("store")
    else:
        now, metrics, _ = data.load_stream(store, now=datetime.now(UTC), stale_after_s=src.stale_after_s)
        ts = data.stream_timeseries(metrics)
        peak = {} if ts.empty else {
            "events": f"15-min avg {ts['events_per_s'].mean():,.0f}",
            "lag": f"15-min peak {ts['lag'].max():,.0f}",
            "lag_s": None if ts["lag_seconds"].isna().all()
            else f"15-min peak {ts['lag_seconds'].max():,.0f} s",
            "consumers": f"15-min range {ts['consumers'].min()}–{ts['consumers'].max()}",
        }  # fmt: skip
        spark = {} if ts.empty else {
            "events": ts["events_per_s"].tail(90).round(1).tolist(),
            "lag": ts["lag"].tail(90).tolist(),
            "lag_s": ts["lag_seconds"].tail(90).fillna(0).round(1).tolist(),
            "consumers": ts["consumers"].tail(90).tolist(),
        }  # fmt: skip
        hr = data.high_risk_threshold(store, src)
        summary = store.score_summary(high_risk=hr.cut)
        if now.last_tick is None:
            ui.empty_state("store", "The store exists but holds no stream metrics yet.")
        else:  # the stream's health and the newest drift check: one banner
            runs = store.drift_runs(since=datetime.now(UTC) - data.DRIFT_ALERT_WINDOW)
            ui.banner(data.with_drift(now.alert, runs), now)
        stale = ui.stale_note(now)  # a stopped stream: its live tiles say so instead of a 15-min figure
        c = st.columns(4)
        c[0].metric("Events / s", f"{now.events_per_s:,.0f}", chart_data=spark.get("events"),
                    chart_type="area", delta=stale or peak.get("events"), delta_color="off" if stale else "primary",
                    delta_arrow="off")
        c[1].metric("Total lag", ui.fmt_int(now.total_lag), chart_data=spark.get("lag"),
                    delta=stale or peak.get("lag"), delta_color="off" if stale else "violet", delta_arrow="off",
                    help="Sum over partitions of log-end minus committed offset")
        c[2].metric("Lag seconds", "—" if now.lag_seconds is None else f"{now.lag_seconds:,.1f} s",
                    chart_data=spark.get("lag_s"), delta=stale or peak.get("lag_s"),
                    delta_color="off" if stale else "orange", delta_arrow="off",
                    help="Event time of the newest record minus that of the last processed one "
                         "(worst partition)")
        c[3].metric("Active consumers", now.consumers, chart_data=spark.get("consumers"),
                    chart_type="bar", delta=stale or peak.get("consumers"),
                    delta_color="off" if stale else "primary",
                    delta_arrow="off")
        c = st.columns(4)
        churned = getattr(summary, "churned_users", 0)
        c[0].metric("Users scored", ui.fmt_int(summary.users),
                    delta=f"{churned:,} cancelled, not counted" if churned else None,
                    delta_color="off", delta_arrow="off",
                    help="Active subscribers with a current score (users who cancelled keep "
                         "their row but are not at risk any more)")
        share = summary.high_risk_users / summary.users if summary.users else 0.0
        c[1].metric(data.high_risk_label(hr), ui.fmt_int(summary.high_risk_users),
                    delta=f"{share:.1%} of users", delta_color="off", delta_arrow="off", help=hr.text())
        c[2].metric("Revenue at risk / month", ui.fmt_money(summary.expected_monthly_loss),
                    help="Σ p(churn) × monthly revenue over the active scored users")
        if reg is data.LOADING:
            c[3].metric("Champion model", "…", help="Reading the MLflow registry")
        elif reg is None or reg.champion is None:
            c[3].metric("Champion model", "none", help=data.NEXT_STEPS["registry"])
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
