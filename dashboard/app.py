"""Churn Intelligence dashboard: ``streamlit run dashboard/app.py`` from the repo root.

Reads only the store, the drift reports and the MLflow registry (locations from the
``CHURN_*`` settings); live parts refresh every ``CHURN_DASHBOARD_REFRESH_S`` seconds.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.ui import CSS

HERE = Path(__file__).parent

st.set_page_config(page_title="Churn Intelligence", page_icon="⚡", layout="wide")
st.markdown(CSS, unsafe_allow_html=True)

PAGES = [
    st.Page(HERE / "pages" / "overview.py", title="Overview", icon=":material/monitoring:",
            default=True),
    st.Page(HERE / "pages" / "stream.py", title="Stream", icon=":material/stream:"),
    st.Page(HERE / "pages" / "risk.py", title="Risk", icon=":material/warning:"),
    st.Page(HERE / "pages" / "revenue.py", title="Revenue", icon=":material/payments:"),
    st.Page(HERE / "pages" / "drift.py", title="Drift", icon=":material/query_stats:"),
    st.Page(HERE / "pages" / "model.py", title="Model", icon=":material/model_training:"),
]  # fmt: skip

st.navigation(PAGES).run()
