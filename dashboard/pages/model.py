"""Model: champion and challenger with their metrics, alias history, links out."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from dashboard import data, ui

src = ui.sources()
st.title("Model")
links = st.columns([1, 1, 6])
links[0].link_button("MLflow UI", src.mlflow_ui, icon=":material/open_in_new:")
links[1].link_button("Prefect UI", src.prefect_ui, icon=":material/open_in_new:")

reg = ui.registry(src.mlflow_uri)
if reg is None:
    ui.empty_state("registry")
else:
    metric_cols = [c for c in reg.versions.columns
                   if c not in ("version", "aliases", "created", "candidate", "decision", "reason")]
    for role, version in (("Champion", reg.champion), ("Challenger", reg.challenger)):
        st.subheader(f"{role}: {'none' if version is None else 'v' + version}")
        if version is None:
            continue
        row = reg.versions[reg.versions["version"] == version].iloc[0]
        shown = [c for c in metric_cols if row.notna()[c]][:5]
        cols = st.columns(max(len(shown), 1) + 1)
        for col, name in zip(cols, shown, strict=False):
            col.metric(name, f"{row[name]:.4f}")
        age = data.age_text(reg.champion_since if role == "Champion" else row["created"]
                            .to_pydatetime(), datetime.now(UTC))
        cols[-1].metric("Age", age, delta=row["candidate"] or None, delta_color="off", delta_arrow="off")
        if row["decision"]:
            st.caption(f"Gate: **{row['decision']}** — {row['reason']}")
    st.subheader("Alias history")
    st.caption("Who was champion when, and why (from the registry's promotion tags).")
    st.dataframe(reg.history, hide_index=True)
    st.subheader("All versions")
    st.dataframe(reg.versions, hide_index=True)
