"""Streamlit glue shared by the pages: sources, cached readers, CSS, empty states."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import streamlit as st

from dashboard import data
from pipeline.autoscale.alerts import Alert, Level

CSS = """
<style>
[data-testid="stMetric"] {
  background: linear-gradient(145deg, rgba(20,26,46,.92), rgba(11,15,26,.92));
  border: 1px solid rgba(0,240,255,.22); border-radius: 14px; padding: 14px 18px;
  box-shadow: 0 0 18px rgba(0,240,255,.07), inset 0 0 12px rgba(255,43,214,.04);
}
[data-testid="stMetricValue"] { color: #00F0FF; text-shadow: 0 0 10px rgba(0,240,255,.45); }
[data-testid="stMetricLabel"] p { letter-spacing: .06em; text-transform: uppercase;
  font-size: .74rem; color: #8C9AC4; }
h1, h2, h3 { letter-spacing: .02em; }
h1 { text-shadow: 0 0 14px rgba(255,43,214,.35); }
.churn-banner { border-radius: 12px; padding: 12px 18px; margin: 4px 0 14px 0;
  font-weight: 600; border: 1px solid; }
.churn-banner small { display: block; font-weight: 400; opacity: .85; margin-top: 2px; }
.churn-Healthy  { color: #39FF88; border-color: #39FF88; background: rgba(57,255,136,.08);
  box-shadow: 0 0 16px rgba(57,255,136,.18); }
.churn-Warning  { color: #FFB000; border-color: #FFB000; background: rgba(255,176,0,.08);
  box-shadow: 0 0 16px rgba(255,176,0,.2); }
.churn-Critical { color: #FF4D6D; border-color: #FF4D6D; background: rgba(255,77,109,.1);
  box-shadow: 0 0 18px rgba(255,77,109,.3); }
.churn-Stale    { color: #8C9AC4; border-color: #8C9AC4; background: rgba(140,154,196,.08); }
.churn-muted { color: #7F8CB0; font-size: .85rem; }
/* Evidently reports are light pages with no background of their own */
iframe { background: #FFFFFF; border-radius: 10px; }
</style>
"""


def sources() -> data.Sources:
    return data.Sources.from_env()


@st.cache_resource(show_spinner=False)
def _store(url: str) -> Any:
    # read-only: the dashboard never creates, migrates or writes the store. A failure
    # (old/newer schema, unreachable server) is not cached: the next rerun tries again.
    from pipeline.store import Store

    return Store(url, read_only=True)


def store(src: data.Sources) -> Any | None:
    """The (cached, read-only) store, or None on a fresh install (its SQLite file is never
    created). A store that cannot be read (schema of another version, server down) shows
    the one-line reason and what to do, and stops the page there."""
    if data._sqlite_missing(src.store_url):
        return None
    from pipeline.errors import StoreError

    try:
        return _store(src.store_url)
    except StoreError as exc:
        st.error(str(exc), icon=":material/database:")
        st.stop()  # the one-line reason is the page: no "no data yet" below it


def registry(uri: str, wait: bool = True) -> data.RegistryView | None:
    """The registry view. Its first load imports MLflow (~10 s cold), so it runs in a
    background thread started with the app; ``wait=False`` returns at once (the last view,
    or :data:`data.LOADING` while the first load runs) so a page never blocks on it."""
    loader = data.registry_loader()
    if not wait:
        return loader.get(uri, wait=False)
    got = loader.get(uri, wait=False)
    if got is data.LOADING:
        with st.spinner("Reading the MLflow registry (first load imports MLflow)..."):
            got = loader.get(uri, wait=True)
    return got


def warm_registry(uri: str) -> None:
    """Start the registry's first (slow) load in the background, without waiting."""
    data.registry_loader().get(uri, wait=False)


def chart(fig: go.Figure, key: str | None = None) -> None:
    st.plotly_chart(fig, theme=None, key=key, config={"displaylogo": False})


def banner(alert: Alert, now: data.StreamNow | None = None) -> None:
    """The stream's level; a stopped stream (``now.state == "stale"``) is its own state,
    "Stopped", never the last tick's (green) level."""
    if now is not None and now.state == "stale":
        limit = f"{now.stale_after_s:,.0f} s" if now.stale_after_s is not None else "a while"
        reasons = (f"{now.stopped_text()} — no metrics tick for over {limit}; the figures below are its "
                   "last known values", *(f"last known: {r}" for r in alert.reasons))
        level, icon = "Stale", "◌"
    else:
        reasons, level = alert.reasons, alert.level.value
        icon = {Level.HEALTHY: "●", Level.WARNING: "▲", Level.CRITICAL: "■"}[alert.level]
    more = "".join(f"<small>{r}</small>" for r in reasons)
    title = "Stopped" if level == "Stale" else level
    st.markdown(
        f'<div class="churn-banner churn-{level}" data-level="{level}">{icon} {title}{more}</div>',
        unsafe_allow_html=True,
    )


def stale_note(now: data.StreamNow) -> str | None:
    """The delta text of a live tile when the stream stopped (the tile is marked stale)."""
    return f"stale · {now.stopped_text()}" if now.state == "stale" else None


def empty_state(what: str, extra: str = "") -> None:
    """What to run next, for a fresh install (``what``: store / registry / drift)."""
    st.info(data.NEXT_STEPS[what] + (f"\n\n{extra}" if extra else ""), icon=":material/info:")


def fmt_int(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def fmt_money(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"
