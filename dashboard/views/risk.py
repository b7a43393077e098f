"""Risk: the churn-risk distribution, the top at-risk users and why, one user's history."""

from __future__ import annotations

import streamlit as st

from dashboard import data, figures, ui

src = ui.sources()
st.title("Risk")


@st.fragment(run_every=src.refresh_s)
def live() -> None:
    store = ui.store(src)
    if store is None:
        ui.empty_state("store")
        return
    hr = data.high_risk_threshold(store, src)
    summary = store.score_summary(high_risk=hr.cut)
    if summary.users == 0:
        ui.empty_state("store", "The store exists but no user has been scored yet.")
        return
    c = st.columns(4)
    c[0].metric("Users scored", ui.fmt_int(summary.users))
    c[1].metric(data.high_risk_label(hr), ui.fmt_int(summary.high_risk_users), help=hr.text())
    c[2].metric("Mean risk", f"{summary.mean_risk:.3f}")
    c[3].metric("High-risk revenue / month", ui.fmt_money(summary.high_risk_monthly_revenue, src.currency))
    ui.chart(figures.risk_histogram_figure(store.risk_histogram(40), hr.threshold))
    st.caption(hr.text())
    st.subheader("Top at-risk users")
    top = data.top_users_table(store.current_scores(top_k=50))
    st.dataframe(
        top, hide_index=True,
        column_order=["user_id", "risk", "reasons", "plan", "monthly_revenue", "model_version"],
        column_config={
            "risk": st.column_config.ProgressColumn("risk", min_value=0.0, max_value=1.0,
                                                    format="%.3f"),
            "reasons": st.column_config.TextColumn("top reasons (SHAP contribution)",
                                                   width="large"),
            "monthly_revenue": st.column_config.NumberColumn(f"monthly revenue ({src.currency})", format="%.2f"),
            "model_version": st.column_config.TextColumn("model"),
        },
    )  # fmt: skip


def lookup() -> None:
    store = ui.store(src)
    if store is None:
        return
    st.subheader("User lookup")
    top = store.current_scores(top_k=20)
    if top.empty:
        return
    user = st.text_input("User id", value=str(top["user_id"].iloc[0]), key="lookup_user",
                         help="Any scored user; defaults to the riskiest one")
    user = user.strip()
    if not user:
        return
    hist = store.score_history([user])
    if hist.attrs.get("unreadable_segments"):
        bad = hist.attrs["unreadable_segments"]
        st.warning(f"{len(bad)} score history segment(s) of the store are unreadable (seq "
                   f"{', '.join(map(str, bad[:5]))}{' ...' if len(bad) > 5 else ''}): their points "
                   "are left out of this chart. They are kept in the store; the log says why.")
    row = data.user_score(store, user)
    if row.empty and hist.empty:
        st.warning(f"No scores for user {user!r}.")
        return
    if not row.empty:
        r = row.iloc[0]
        c = st.columns(4)
        gone = "active" in r.index and not bool(r["active"])
        c[0].metric("Current risk", f"{r['risk']:.3f}",
                    delta="cancelled: not counted" if gone else None, delta_color="off",
                    delta_arrow="off")
        c[1].metric("Plan", r["plan"] or "—")
        c[2].metric("Monthly revenue", ui.fmt_money(r["monthly_revenue"], src.currency))
        c[3].metric("Model", f"v{r['model_version']}")
        reasons = data.format_reasons(r["reasons"], top=5)
        if reasons:
            st.markdown(f"**Why:** {reasons}")
    ui.chart(figures.user_history_figure(hist, user, data.high_risk_threshold(store, src).threshold))


live()
lookup()
