"""Model: champion and challenger with their metrics, alias history, links out."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from dashboard import data, ui

src = ui.sources()
st.title("Model")
# links only to the services that answer (probed with a short timeout, cached)
UP = {"mlflow": ui.answers(src.mlflow_ui), "prefect": ui.answers(src.prefect_ui)}
links = st.columns([1, 1, 6])
for col, (key, name, url) in zip(links, (("mlflow", "MLflow UI", src.mlflow_ui),
                                         ("prefect", "Prefect UI", src.prefect_ui)), strict=False):
    if UP[key]:
        col.link_button(name, url, icon=":material/open_in_new:")
if not all(UP.values()):
    down = [n for k, n in (("mlflow", f"MLflow (`{src.mlflow_ui}`)"), ("prefect", f"Prefect (`{src.prefect_ui}`)"))
            if not UP[k]]
    (links[2] if any(UP.values()) else st).caption(f"Not running: {', '.join(down)} — `churn up` (or `make demo`) starts the stack; "
                     "links to it appear once it answers.")

INFO = ("version", "aliases", "created", "candidate", "decision", "reason", "by", "horizon_days",
        "test_window", "gate_champion", "gate_windows")
KEY_METRICS = ("roc_auc", "pr_auc", "lift_10", "brier", "log_loss")

@st.fragment(run_every=max(src.refresh_s, 30))  # a retrain or promotion shows up live
def live() -> None:
    reg = ui.registry(src.mlflow_uri)
    if data.registry_loader().error:
        st.error(data.registry_loader().error, icon=":material/error:")
    if reg is None:
        ui.empty_state("registry")
    else:
        metric_cols = [c for c in reg.versions.columns if c not in INFO]
        metric_cols = sorted(metric_cols, key=lambda c: (c not in KEY_METRICS, KEY_METRICS.index(c)
                                                         if c in KEY_METRICS else 0, c))
        for role, version in (("Champion", reg.champion), ("Challenger", reg.challenger)):
            st.subheader(f"{role}: {'none' if version is None else 'v' + version}")
            if version is None:
                st.caption("No version holds this alias." if role == "Champion" else
                           "No challenger: the newest version is the champion, or none was trained since.")
                continue
            row = reg.versions[reg.versions["version"] == version].iloc[0]
            shown = [c for c in metric_cols if row.notna()[c]][:5]
            cols = st.columns(max(len(shown), 1) + 1)
            own = data._window_text({"test_window": row.get("test_window", "")})
            for col, name in zip(cols, shown, strict=False):
                col.metric(name, f"{row[name]:.4f}", help=f"On v{version}'s own {own}, at its training "
                           "(a later gate re-scores it on the challenger's newer window)")
            age = data.age_text(reg.champion_since if role == "Champion" else row["created"]
                                .to_pydatetime(), datetime.now(UTC))
            cols[-1].metric("Age", age, delta=row["candidate"] or None, delta_color="off", delta_arrow="off")
            if not shown:
                st.caption("No gate metrics recorded on this version (registered outside `churn train`).")
            if shown:
                st.caption(f"These figures: v{version} on its own {own}, measured at its training.")
            links_ = []
            if UP["mlflow"]:
                links_.append(f"[v{version} in the MLflow UI]({data.mlflow_version_url(src.mlflow_ui, version)})")
            run = data.prefect_run_url(src.prefect_ui, row.get("by"))
            if run and UP["prefect"]:
                links_.append(f"[its Prefect flow run]({run})")
            line = " · ".join(links_)
            if row["decision"]:
                line = f"Gate: **{row['decision']}** — {row['reason']}" + (f" · {line}" if line else "")
            if line:
                st.markdown(line)
            if row.get("gate_windows"):
                st.caption(row["gate_windows"])
            _later_gates(reg, version)
        _realised(reg)
        st.subheader("Alias history")
        st.caption("Who was champion when, and why (from the registry's promotion tags).")
        hist = reg.history.copy()
        hist["flow run"] = [data.prefect_run_url(src.prefect_ui, b) if UP["prefect"] else None
                            for b in hist["by"]]
        hist["scores"] = hist["scores"].map(data.scores_text)
        hist = data.alias_history_table(hist)
        if not UP["prefect"]:
            hist = hist.drop(columns=["flow run"])
        st.dataframe(hist, hide_index=True, column_config={
            "since": st.column_config.TextColumn("since (UTC)"),
            "until": st.column_config.TextColumn("until (UTC)"),
            "flow run": st.column_config.LinkColumn("flow run", display_text="Prefect"),
            "scores": st.column_config.TextColumn("scores at promotion (its test window)", width="medium"),
        })  # fmt: skip
        st.subheader("All versions")
        versions = reg.versions.assign(
            mlflow=[data.mlflow_version_url(src.mlflow_ui, v) if UP["mlflow"] else None
                    for v in reg.versions["version"]])
        key = [c for c in metric_cols if c in KEY_METRICS]
        st.caption("Metrics: each version on its own test window (column `test window`); the gate's "
                   "comparison, champion re-scored on the challenger's window, is in `gate: windows`.")
        st.dataframe(versions, hide_index=True, column_order=["version", "aliases", "candidate", "decision",
                     *key, "test_window", "created", *(["mlflow"] if UP["mlflow"] else []), "reason",
                     "gate_windows"], column_config={
            "test_window": st.column_config.TextColumn("test window"),
            "gate_windows": st.column_config.TextColumn("gate: windows", width="large"),
            "mlflow": st.column_config.LinkColumn("MLflow", display_text="open"),
            "created": st.column_config.DatetimeColumn("registered", format="YYYY-MM-DD HH:mm"),
            **{c: st.column_config.NumberColumn(c, format="%.4f") for c in metric_cols},
        })  # fmt: skip


def _later_gates(reg, version: str) -> None:
    """Where a later gate scored this (champion) version on a newer window: say so beside
    its card, so the two figures do not read as a contradiction."""
    v = reg.versions
    if "gate_champion" not in v:
        return
    later = v[(v["gate_champion"] == version) & (v["version"] != version) & (v["gate_windows"] != "")]
    for _, r in later.iterrows():
        st.caption(f"Gate of v{r['version']} ({r['decision']}): {r['gate_windows']}")


def _realised(reg) -> None:
    """Realised performance beside the training-time test figures (issue 18)."""
    from dashboard import figures

    st.subheader("Realised performance")
    horizon = data.horizon_of(reg.versions, reg.champion)
    store = None if data._sqlite_missing(src.store_url) else _store_or_none()
    view = data.load_realised(store, horizon)
    if view.note:
        st.info(view.note, icon=":material/hourglass_top:")
        return
    names = list(data.REALISED_METRICS)
    metric = st.selectbox("metric", names, format_func=data.REALISED_METRICS.get, key="realised_metric")
    champ = reg.versions[reg.versions["version"] == reg.champion] if reg.champion else reg.versions.iloc[0:0]
    test = float(champ[metric].iloc[0]) if len(champ) and metric in champ and champ[metric].notna().iloc[0] else None
    ui.chart(figures.realised_figure(view.rows, metric, data.REALISED_METRICS[metric], test, reg.champion))
    h = int(view.rows["horizon_days"].iloc[-1])
    st.caption(f"Each point: the scores the stream had published at that day's midnight (active subscribers), "
               f"judged by the cancels of the following {h} days; band: bootstrap 95 % interval; dashed: the "
               "champion's figure on its training test window. A day appears once its horizon has passed.")


def _store_or_none():
    try:
        return ui._store(src.store_url)
    except Exception as exc:  # noqa: BLE001 - the registry part of the page still shows
        st.caption(f"store not readable: {exc}")
        return None


live()
