"""Churn Intelligence dashboard: ``streamlit run dashboard/app.py`` from the repo root.

Reads only the store, the drift reports and the MLflow registry (locations from the
``CHURN_*`` settings); live parts refresh every ``CHURN_DASHBOARD_REFRESH_S`` seconds.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import ui
from dashboard.ui import CSS

HERE = Path(__file__).parent
# The pages live in views/, not pages/: Streamlit treats a pages/ folder beside the main
# script as old-style pages, and a bookmarked URL like /drift then ran that file alone,
# without this script's theme, CSS and navigation.

st.set_page_config(page_title="Churn Intelligence", page_icon="⚡", layout="wide")
st.markdown(CSS, unsafe_allow_html=True)

PAGES = [
    st.Page(HERE / "views" / "overview.py", title="Overview", icon=":material/monitoring:",
            default=True),
    st.Page(HERE / "views" / "stream.py", title="Stream", icon=":material/stream:"),
    st.Page(HERE / "views" / "risk.py", title="Risk", icon=":material/warning:"),
    st.Page(HERE / "views" / "revenue.py", title="Revenue", icon=":material/payments:"),
    st.Page(HERE / "views" / "drift.py", title="Drift", icon=":material/query_stats:"),
    st.Page(HERE / "views" / "model.py", title="Model", icon=":material/model_training:"),
]  # fmt: skip

ui.warm_registry(ui.sources().mlflow_uri)  # MLflow's cold import runs beside the first page
st.navigation(PAGES).run()
