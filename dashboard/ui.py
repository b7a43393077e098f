"""Streamlit glue shared by the pages: sources, cached readers, CSS, empty states."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import data
from pipeline import humanize
from pipeline.autoscale.alerts import Alert, Level

CSS = """
<style>
[data-testid="stMetric"] {
  background: linear-gradient(145deg, rgba(20,26,46,.92), rgba(11,15,26,.92));
  border: 1px solid rgba(0,240,255,.22); border-radius: 14px; padding: 14px 18px;
  box-shadow: 0 0 18px rgba(0,240,255,.07), inset 0 0 12px rgba(255,43,214,.04);
}
[data-testid="stMetricValue"] { color: #00F0FF; text-shadow: 0 0 10px rgba(0,240,255,.45);
  font-size: clamp(1.25rem, 2.1vw, 2.25rem); }  /* narrower window, smaller figure: it still fits */
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
.churn-CatchingUp { color: #00F0FF; border-color: #00F0FF; background: rgba(0,240,255,.07);
  box-shadow: 0 0 16px rgba(0,240,255,.16); }
/* a tile's text stays inside the tile at any width: the value is short (compact units);
   its label and delta line wrap onto a second line instead of being cut with an ellipsis */
[data-testid="stMetricLabel"], [data-testid="stMetricLabel"] *,
[data-testid="stMetricDelta"], [data-testid="stMetricDelta"] * {
  white-space: normal !important; text-overflow: clip !important; overflow-wrap: anywhere;
  max-width: 100%; height: auto; }
[data-testid="stMetricDelta"] { height: auto !important; }
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
        limit = humanize.duration(now.stale_after_s) if now.stale_after_s is not None else "a while"
        reasons = (f"{now.stopped_text()} — no metrics tick for over {limit}; the figures below are its "
                   "last known values", *(f"last known: {r}" for r in alert.reasons))
        level, icon = "Stale", "◌"
    else:
        reasons, level = alert.reasons, alert.level.value
        icon = {Level.HEALTHY: "●", Level.WARNING: "▲", Level.CRITICAL: "■"}[alert.level]
    more = "".join(f"<small>{readable(r)}</small>" for r in reasons)
    title = "Stopped" if level == "Stale" else level
    st.markdown(
        f'<div class="churn-banner churn-{level}" data-level="{level}">{icon} {title}{more}</div>',
        unsafe_allow_html=True,
    )


def phase_note(phase: data.Phase) -> None:
    """Catching up is its own state (a replay of history, a restart after downtime): a banner
    that says so and how long to go; after one, a caption says when it ended."""
    if phase.kind == "catching_up":
        st.markdown(f'<div class="churn-banner churn-CatchingUp" data-phase="catching_up">⟳ Catching up'
                    f"<small>{phase.text}</small></div>", unsafe_allow_html=True)
    elif phase.kind == "steady" and phase.text:
        st.markdown(f'<div class="churn-muted" data-phase="steady">{phase.text}</div>', unsafe_allow_html=True)


# Evidently's report is a light page: shown dark like the rest (inverted, hues kept), fitted to
# the frame's width (it scrolls inside, never cut off at the right)
REPORT_CSS = """<style id="churn-theme">
html { filter: invert(0.9) hue-rotate(180deg); background: #ffffff; }
html, body { max-width: 100%; overflow-x: auto; }
body { margin: 0 8px; zoom: 0.88; }
/* its cards clip wide tables (overflow hidden): scroll them instead of cutting them off */
.MuiPaper-root, .MuiCardContent-root { overflow-x: auto !important; }
img, video { filter: invert(1) hue-rotate(180deg); }
</style>"""


@st.cache_data(max_entries=2, show_spinner=False)
def _themed(path: str, mtime: float) -> str:
    html = Path(path).read_text(encoding="utf-8", errors="replace")
    head = html.find("<head>")
    return html[: head + 6] + REPORT_CSS + html[head + 6 :] if head >= 0 else REPORT_CSS + html


def themed_report(path: Path) -> str:
    """The Evidently HTML report at ``path``, themed for the dark page (cached per file)."""
    return _themed(str(path), path.stat().st_mtime)


def report_caption(view: data.DriftView) -> str:
    """Which check the embedded report is of, and whether it is the newest check's."""
    at = data.report_time(view.report)
    when = "" if at is None else f"the check at {at:%Y-%m-%d %H:%M:%S} UTC — "
    newest = view.runs["time"].max() if not view.runs.empty else None
    if at is not None and newest is not None and pd.Timestamp(newest) > pd.Timestamp(at):
        note = (f"the newest check ({pd.Timestamp(newest):%H:%M:%S} UTC, whose figures the tiles show) rendered "
                "no full report: only every N-th check does (CHURN_DRIFT_FULL_REPORT_EVERY). ")
    else:
        note = "the newest check, as in the tiles above. "
    return (f"Report of {when}{note}Evidently counts the risk score as one more column (the prediction "
            f"drift tile), so its column and drifted counts can exceed the features' by one. File: {view.report}")


_SECONDS = re.compile(r"(\d[\d,]*(?:\.\d+)?) s\b")


def readable(reason: str) -> str:
    """An alert reason with its long durations humanised: '5,810,484 s behind >= critical 600 s'
    -> '67 d behind >= critical 10 min' (a minute or less stays in seconds)."""
    def one(m: re.Match) -> str:
        v = float(m.group(1).replace(",", ""))
        return humanize.duration(v) if v >= 60 else m.group(0)

    return _SECONDS.sub(one, reason)


def stale_note(now: data.StreamNow) -> str | None:
    """The delta text of a live tile when the stream stopped (the tile is marked stale)."""
    return f"stale · {now.stopped_text()}" if now.state == "stale" else None


def empty_state(what: str, extra: str = "") -> None:
    """What to run next, for a fresh install (``what``: store / registry / drift)."""
    st.info(data.next_step(what, sources().data_dir) + (f"\n\n{extra}" if extra else ""),
            icon=":material/info:")


EXACT_BELOW = 100_000  # tiles show counts exactly up to here ("84,210"), compact above ("2.79M")


def fmt_int(v: float | None) -> str:
    """A count for a tile: exact while short, compact units above (fits at any magnitude)."""
    if v is None or v != v:
        return "—"
    return f"{v:,.0f}" if abs(v) < EXACT_BELOW else humanize.count(v)


def fmt_rate(v: float | None) -> str:
    """Events/s for a tile: ``59.9k``, ``950``, ``3.5``."""
    return "—" if v is None or v != v else humanize.count(v)


def fmt_duration(seconds: float | None) -> str:
    """Seconds for a tile: ``3.2 s``, ``2 h 01 min``, ``164 d``."""
    return "—" if seconds is None or seconds != seconds else humanize.duration(seconds)


def fmt_money(v: float | None, currency: str | None = None) -> str:
    """Money in the plan prices' currency (``CHURN_CURRENCY``): ``$21,475``, ``EUR 1.25M``."""
    if v is None or v != v:
        return "—"
    return humanize.money(v, currency or sources().currency)


@st.cache_data(ttl=30, show_spinner=False)
def answers(url: str, timeout_s: float = 0.5) -> bool:
    """Whether a local service (the MLflow / Prefect UI) answers: a link only to one that does.
    Cached 30 s: a page never waits more than ``timeout_s`` on a service that is down."""
    return data.service_answers(url, timeout_s)
