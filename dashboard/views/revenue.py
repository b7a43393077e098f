"""Revenue: the retention-campaign simulator on the live scores (pipeline.revenue)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import data, figures, ui
from pipeline.revenue import Campaign, simulate_campaign, sweep

src = ui.sources()
st.title("Revenue")
st.caption("Contact the top-K % of users by live churn risk. Outcomes are expected values: "
           "each user's p(churn) stands for whether they would churn.")


@st.cache_data(ttl=30, show_spinner=False)
def _inputs(url: str) -> tuple[np.ndarray, np.ndarray]:
    store = ui.store(src)
    return data.campaign_inputs(store.current_scores(top_k=None))


@st.cache_data(ttl=30, show_spinner=False)
def _sweep(risk: np.ndarray, rev: np.ndarray, c: Campaign) -> pd.DataFrame:
    return sweep(risk, risk, rev, c, shares=np.round(np.arange(1, 101) / 100, 2))


@st.fragment(run_every=max(src.refresh_s, 30))  # the scores move: re-simulate on them live
def results(campaign: Campaign, months: int) -> None:
    risk, rev = _inputs(src.store_url)
    res = simulate_campaign(risk, risk, rev, campaign)
    m = st.columns(5)
    m[0].metric("Users contacted", ui.fmt_int(res.contacted), delta=f"of {ui.fmt_int(res.users)}",
                delta_color="off", delta_arrow="off")
    m[1].metric("Churners prevented", ui.fmt_int(res.churners_prevented),
                delta=f"of {ui.fmt_int(res.baseline_churners)} expected", delta_color="off", delta_arrow="off")
    m[2].metric("Revenue saved", ui.fmt_money(res.revenue_saved, src.currency),
                delta=f"over {months} months", delta_color="off", delta_arrow="off")
    m[3].metric("Net value", ui.fmt_money(res.net_value, src.currency), delta=f"cost {ui.fmt_money(res.cost, src.currency)}",
                delta_color="off", delta_arrow="off")
    m[4].metric("ROI", "—" if np.isnan(res.roi) else f"{res.roi:.0%}")
    table = _sweep(risk, rev, campaign)
    ui.chart(figures.roi_curve_figure(table, campaign.top_share, src.currency))
    best = table.loc[table["net_value"].idxmax()]
    st.caption(f"Best K on this grid: {best['top_share']:.0%} (net value "
               f"{ui.fmt_money(best['net_value'], src.currency)}, ROI {best['roi']:.0%}). Revenue at risk: "
               f"{ui.fmt_money(res.revenue_at_risk_monthly, src.currency)} per month (money in {src.currency}, "
               "CHURN_CURRENCY).")


store = ui.store(src)
if store is None or store.score_summary().users == 0:
    ui.empty_state("store")
else:
    with st.container(border=True):
        c = st.columns(5)
        k = c[0].slider("Top-K contacted (%)", 1, 100, 10, key="k")
        eff = c[1].slider("Effectiveness (%)", 0, 100, 30, key="eff",
                          help="Share of contacted would-be churners the campaign keeps")
        cost = c[2].slider(f"Cost per contact ({src.currency})", 0.0, 20.0, 2.0, 0.5, key="cost")
        incentive = c[3].slider(f"Incentive per retained user ({src.currency})", 0.0, 50.0, 10.0, 1.0,
                                key="incentive")
        months = c[4].slider("Months of revenue saved", 1, 24, 6, key="months")
    campaign = Campaign(top_share=k / 100, effectiveness=eff / 100, cost_per_contact=cost,
                        incentive_cost=incentive, months=float(months))
    results(campaign, months)
