"""Stream: throughput, lag, partitions (Burrow status), consumers + autoscaler, latency."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from dashboard import data, figures, ui

src = ui.sources()
st.title("Stream")
st.caption(f"The newest {int(data.WINDOW.total_seconds() // 60)} minutes of the consumer "
           "group's metrics, refreshed live.")


@st.fragment(run_every=src.refresh_s)
def live() -> None:
    store = ui.store(src)
    if store is None:
        ui.empty_state("store")
        return
    now, metrics, decisions = data.load_stream(store, now=datetime.now(UTC), stale_after_s=src.stale_after_s)
    if metrics.empty:
        ui.empty_state("store", "The store exists but holds no stream metrics yet.")
        return
    ts = data.stream_timeseries(metrics)
    phase = data.stream_phase(now, ts)
    ui.banner(now.alert, now)
    ui.phase_note(phase)
    # a stopped stream: every live tile says so (the values are its last known ones)
    stale = {"delta": ui.stale_note(now), "delta_color": "off", "delta_arrow": "off"} if now.state == "stale" else {}
    c = st.columns(5)
    c[0].metric("Events / s", ui.fmt_rate(now.events_per_s), help=f"{now.events_per_s:,.1f}", **stale)
    c[1].metric("Total lag", ui.fmt_int(now.total_lag), help=f"{now.total_lag:,} records", **stale)
    c[2].metric("Lag (event time)", ui.fmt_duration(now.lag_seconds),
                help=None if now.lag_seconds is None else f"{now.lag_seconds:,.1f} s (worst partition)", **stale)
    c[3].metric("Consumers", now.consumers if now.state == "stale" else now.holding,
                help="Workers holding at least one partition (the table below)", **stale)
    share = now.window_dead_letters / now.window_events if now.window_events else 0.0
    c[4].metric("Dead letters (window)", ui.fmt_int(now.window_dead_letters),
                delta=f"{share:.3%} of events", delta_color="off", delta_arrow="off")
    left, right = st.columns(2)
    with left:
        ui.chart(figures.throughput_figure(ts, catch_up=data.catching_up(ts["lag"], ts["events_per_s"], ts["lag_seconds"])))
    with right:
        ui.chart(figures.lag_figure(ts, catch_up=data.catching_up(ts["lag"], ts["events_per_s"], ts["lag_seconds"])))
    left, right = st.columns(2)
    with left:
        ui.chart(figures.partition_lag_figure(now.partitions))
    with right:
        ui.chart(figures.consumers_figure(ts, decisions))
    left, right = st.columns(2)
    with left:
        ui.chart(figures.latency_figure(ts))
    with right:
        ui.chart(figures.dead_letters_figure(ts))
    with st.expander("Partitions (kafka-consumer-groups style)", expanded=True):
        parts = now.partitions.assign(lag_seconds=now.partitions["lag_seconds"].map(ui.fmt_duration))
        st.dataframe(
            parts, hide_index=True,
            column_config={
                "partition": st.column_config.NumberColumn("PARTITION"),
                "lag": st.column_config.NumberColumn("LAG", format="localized"),
                "lag_seconds": st.column_config.TextColumn("BEHIND (event time)"),
                "status": st.column_config.TextColumn("STATUS (Burrow)"),
                "worker": st.column_config.TextColumn("CONSUMER"),
                "time": st.column_config.DatetimeColumn("LAST TICK", format="HH:mm:ss"),
            },
        )  # fmt: skip
    if not decisions.empty:
        with st.expander("Autoscaler decisions"):
            st.dataframe(decisions.sort_values("time", ascending=False), hide_index=True)


live()
