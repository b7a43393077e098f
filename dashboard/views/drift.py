"""Drift: share of drifted features over time, per-feature scores, the latest report,
and the retrain requests (critical checks)."""

from __future__ import annotations

import streamlit as st

from dashboard import data, figures, ui

src = ui.sources()
st.title("Drift")
st.caption("Live feature vectors against the champion's training reference (Evidently), "
           "checked by the stream every few minutes.")


@st.fragment(run_every=max(src.refresh_s, 30))
def live() -> None:
    view = data.load_drift(ui.store(src), src.data_dir, bands=(src.drift_warning, src.drift_critical))
    if src.problem:
        st.error(f"{src.problem} — the stream refuses these settings; the bands below are the defaults.",
                 icon=":material/settings:")
    runs = view.runs
    state = data.checks_state(view.checks)
    if state.kind == "skipped":
        st.warning(f"Drift check skipped — {state.text}", icon=":material/skip_next:")
    elif state.kind == "failing":
        st.error(f"Drift check failing — {state.text}", icon=":material/error:")
    if runs.empty and view.report is None:
        if state.kind == "none":
            ui.empty_state("drift")
        else:
            st.info("No drift check has run yet: every check that came due was skipped or failed "
                    "(below, with the reasons).")
            _not_run(view.checks)
        return
    if not runs.empty:
        last = runs.iloc[-1]
        c = st.columns(4)
        c[0].metric("Checks", f"{len(runs):,}", help="In the newest 7 days of checks")
        c[1].metric("Drifted features (last)", f"{last['share']:.0%}",
                    delta=f"{int(last['drifted_count'])} of {int(last['features'])}",
                    delta_color="off", delta_arrow="off")
        c[2].metric("Level (last)", last["level"])
        pred = last.get("prediction_score")
        c[3].metric("Prediction drift (last)", "—" if pred is None or pred != pred
                    else f"{pred:.3f}")
        ui.chart(figures.drift_share_figure(runs, view.warning, view.critical))
        ui.chart(figures.drift_heatmap_figure(view.features))
    reg = ui.registry(src.mlflow_uri, wait=False)
    versions = reg.versions if isinstance(reg, data.RegistryView) else data.LOADING if reg is data.LOADING else None
    decisions = data.load_decisions(ui.store(src), versions)
    if decisions.empty and not runs.empty:  # retrain_policy='immediate': the checks' own requests
        _requests(data.retrain_events(runs, versions))
    else:
        _decisions(decisions)
    _not_run(view.checks)
    if view.report is not None:
        st.subheader("Latest Evidently report")
        st.caption(ui.report_caption(view))
        st.iframe(ui.themed_report(view.report), height=900)
    else:
        st.caption("No full HTML report rendered yet (every N-th check renders one).")


def _requests(events) -> None:
    """Retrain requests of the checks themselves (retrain_policy='immediate')."""
    st.subheader("Retrain requests")
    if events.empty:
        st.caption("No critical check yet: no retrain was requested.")
        return
    asked = int((events["status"] == "requested").sum())
    st.caption(f"{asked} request(s) first, each with what the gate decided on the version trained after "
               f"it; then {len(events) - asked} check(s) inside the cooldown. A critical check starts the "
               "train deployment — at most once per "
               f"{ui.fmt_duration(src.retrain_cooldown_hours * 3600)} (CHURN_DRIFT_RETRAIN_COOLDOWN_HOURS).")
    st.dataframe(events, hide_index=True, column_config={
        "time": st.column_config.DatetimeColumn("checked", format="YYYY-MM-DD HH:mm:ss"),
        "model_version": st.column_config.TextColumn("model"),
        "status": st.column_config.TextColumn("retrain"),
        "outcome": st.column_config.TextColumn("gate outcome", width="large"),
        "share": st.column_config.NumberColumn("drifted share", format="percent"),
        "reasons": st.column_config.TextColumn("why", width="large"),
        "report_path": st.column_config.TextColumn("report"),
    })  # fmt: skip


def _decisions(table) -> None:
    """Drift episodes' retrain decisions: requested / deferred until / sent / failed / skipped."""
    st.subheader("Retrain decisions")
    if table.empty:
        st.caption("No drift episode yet: a Critical check opens one, and the retrain waits for labelled "
                   "post-onset data (the label horizon after the onset, enough churners) or a realised-AUC drop.")
        return
    st.caption("Requests and their outcomes first, newest first; then deferrals. The cooldown starts only "
               "when a retrain run was created.")
    st.dataframe(table, hide_index=True, column_config={
        "time": st.column_config.DatetimeColumn("event time", format="YYYY-MM-DD"),
        "decision": st.column_config.TextColumn("decision"),
        "outcome": st.column_config.TextColumn("gate outcome", width="medium"),
        "reason": st.column_config.TextColumn("why", width="large"),
        "due": st.column_config.DatetimeColumn("deferred until", format="YYYY-MM-DD"),
        "run": st.column_config.TextColumn("train run"),
        "model_version": st.column_config.TextColumn("model"),
        "onset": st.column_config.DatetimeColumn("drift onset", format="YYYY-MM-DD"),
        "episode": st.column_config.TextColumn("episode"),
    })  # fmt: skip


def _not_run(checks) -> None:
    """The checks that came due but did not run, with why (skipped: e.g. too few rows;
    failed: the exception)."""
    missed = checks[checks["status"] != "checked"] if not checks.empty else checks
    if missed.empty:
        return
    st.subheader("Checks that did not run")
    st.dataframe(missed.sort_values("time", ascending=False), hide_index=True,
                 column_order=["time", "status", "status_reason", "model_version", "rows"], column_config={
        "time": st.column_config.DatetimeColumn("due", format="YYYY-MM-DD HH:mm:ss"),
        "status": st.column_config.TextColumn("status"),
        "status_reason": st.column_config.TextColumn("why", width="large"),
        "model_version": st.column_config.TextColumn("model"),
        "rows": st.column_config.NumberColumn("window rows"),
    })  # fmt: skip


live()
