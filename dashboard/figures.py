"""Pure figure builders: DataFrame in, plotly Figure out (no Streamlit, no I/O).

Every builder accepts an empty frame and then returns a figure that says "no data"
instead of raising, so a page never shows a traceback on a fresh install.

>>> import pandas as pd
>>> fig = risk_histogram_figure(pd.DataFrame({"bin_start": [0, .5], "bin_end": [.5, 1], "users": [3, 1]}), 0.5)
>>> fig.data[0].type
'bar'
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

CYAN, MAGENTA, LIME, AMBER, VIOLET, RED = (
    "#00F0FF", "#FF2BD6", "#39FF88", "#FFB000", "#9D7BFF", "#FF4D6D"
)  # fmt: skip
TEXT, GRID, PAPER = "#D7E3FF", "rgba(120,140,200,0.15)", "rgba(0,0,0,0)"
STATUS_COLORS = {"OK": LIME, "WARN": AMBER, "STALL": RED, "STOP": RED, "REWIND": MAGENTA, "PAST-END": RED}
ACTION_COLORS = {"scale_up": LIME, "scale_down": MAGENTA, "hold": VIOLET}


def _layout(fig: go.Figure, title: str, height: int = 320, **kw: object) -> go.Figure:
    layout: dict[str, object] = {
        "title": {"text": title, "x": 0.01, "font": {"size": 15}},
        "template": "plotly_dark",
        "paper_bgcolor": PAPER,
        "plot_bgcolor": "rgba(12,16,32,0.55)",
        "font": {"color": TEXT, "family": "JetBrains Mono, Menlo, monospace", "size": 12},
        "colorway": [CYAN, MAGENTA, LIME, AMBER, VIOLET, RED],
        "height": height,
        "margin": {"l": 56, "r": 24, "t": 48, "b": 48},
        "legend": {"orientation": "h", "y": -0.2, "yanchor": "top", "x": 0, "xanchor": "left"},
        "hovermode": "x unified",
    }
    fig.update_layout(**{**layout, **kw})
    fig.update_xaxes(gridcolor=GRID, zeroline=False)
    fig.update_yaxes(gridcolor=GRID, zeroline=False)
    return fig


def empty_figure(title: str, text: str = "no data yet") -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, font={"size": 14, "color": "#7F8CB0"},
                       xref="paper", yref="paper", x=0.5, y=0.5)  # fmt: skip
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title)


def _glow_line(x: pd.Series, y: pd.Series, name: str, color: str, fill: bool = False,
               mode: str = "lines", **kw: object) -> go.Scatter:  # fmt: skip
    return go.Scatter(
        x=x, y=y, name=name, mode=mode, line={"color": color, "width": 2.4},  # linear: no overshoot
        fill="tozeroy" if fill else None,
        fillcolor=_alpha(color, 0.12) if fill else None,
        **kw,
    )  # fmt: skip


def _alpha(hex_color: str, a: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{a})"


# -- stream ---------------------------------------------------------------------------------
def _shade_catch_up(fig: go.Figure, ts: pd.DataFrame, catch_up: pd.Series | None) -> None:
    """Shade the buckets where the stream was catching up (``dashboard.data.catching_up``)."""
    if catch_up is None or not bool(catch_up.any()):
        return
    flags = catch_up.fillna(False).astype(bool).to_numpy()
    times = ts["time"].to_numpy()
    step = times[1] - times[0] if len(times) > 1 else np.timedelta64(1, "s")
    start = None
    for i, on in enumerate([*flags, False]):
        if on and start is None:
            start = i
        elif not on and start is not None:
            fig.add_vrect(x0=times[start], x1=times[i - 1] + step, fillcolor=VIOLET, opacity=0.10, line_width=0,
                          annotation_text="catching up", annotation_position="top left",
                          annotation_font={"size": 10, "color": VIOLET})  # fmt: skip
            start = None


def throughput_figure(ts: pd.DataFrame, catch_up: pd.Series | None = None) -> go.Figure:
    """Events/s of the whole consumer group over time (``stream_timeseries`` rows); the
    buckets flagged in ``catch_up`` are shaded."""
    title = "Throughput (events/s)"
    if ts.empty:
        return empty_figure(title)
    fig = go.Figure(_glow_line(ts["time"], ts["events_per_s"], "events/s", CYAN, fill=True))
    _shade_catch_up(fig, ts, catch_up)
    _layout(fig, title, showlegend=False)
    fig.update_yaxes(tickformat=".3~s")
    return fig


def lag_figure(ts: pd.DataFrame, catch_up: pd.Series | None = None) -> go.Figure:
    """Total lag in records (left axis) and the worst partition's lag seconds (right)."""
    title = "Consumer lag"
    if ts.empty:
        return empty_figure(title)
    fig = go.Figure()
    _shade_catch_up(fig, ts, catch_up)
    fig.add_trace(_glow_line(ts["time"], ts["lag"], "lag (records)", MAGENTA, fill=True))
    fig.add_trace(_glow_line(ts["time"], ts["lag_seconds"], "lag (event-time s)", AMBER, yaxis="y2"))
    _layout(fig, title)
    fig.update_layout(
        yaxis={"title": "records", "rangemode": "tozero", "tickformat": ".3~s"},
        yaxis2={"title": "seconds behind", "overlaying": "y", "side": "right", "showgrid": False,
                "rangemode": "tozero", "tickformat": ".3~s"},
    )
    fig.update_xaxes(tickangle=0, nticks=5)  # two y axes leave less room: no slanted labels
    return fig


def partition_lag_figure(parts: pd.DataFrame) -> go.Figure:
    """Current lag per partition, coloured by its Burrow status (OK/WARN/STALL/STOP/REWIND)."""
    title = "Lag by partition (Burrow status)"
    if parts.empty:
        return empty_figure(title)
    p = parts.sort_values("partition")
    fig = go.Figure()
    for status, grp in p.groupby("status", sort=False):
        fig.add_trace(go.Bar(
            x=grp["partition"].astype(str), y=grp["lag"], name=str(status),
            marker={"color": STATUS_COLORS.get(str(status), VIOLET),
                    "line": {"color": STATUS_COLORS.get(str(status), VIOLET), "width": 1}},
            opacity=0.85, text=[str(status)] * len(grp), textposition="outside",
            customdata=grp[["worker", "lag_seconds"]].to_numpy(),
            hovertemplate="partition %{x}<br>lag %{y:,}<br>%{customdata[1]:.0f} s behind"
                          "<br>worker %{customdata[0]}<extra>%{text}</extra>",
        ))  # fmt: skip
    _layout(fig, title, hovermode="closest")
    fig.update_xaxes(title="partition", type="category", categoryorder="array",
                     categoryarray=p["partition"].astype(str).tolist())  # fmt: skip
    top = float(p["lag"].fillna(0).max())
    fig.update_yaxes(title="records", rangemode="tozero", range=None if top > 0 else [0, 1],
                     tickformat=",d", dtick=1 if top < 5 else None)  # fmt: skip
    if top <= 0:
        fig.add_annotation(text="every partition caught up (lag 0)", showarrow=False, xref="paper",
                           yref="paper", x=0.5, y=0.6, font={"size": 13, "color": LIME})  # fmt: skip
    return fig


def consumers_figure(ts: pd.DataFrame, decisions: pd.DataFrame) -> go.Figure:
    """Active consumers over time, with the autoscaler's decisions and reasons marked."""
    title = "Consumers & autoscaler decisions"
    if ts.empty and decisions.empty:
        return empty_figure(title)
    fig = go.Figure()
    if not ts.empty:
        fig.add_trace(go.Scatter(x=ts["time"], y=ts["consumers"], name="consumers",
                                 mode="lines", line={"color": CYAN, "width": 2.4, "shape": "hv"},
                                 fill="tozeroy", fillcolor=_alpha(CYAN, 0.08)))  # fmt: skip
    if not decisions.empty:
        for action, grp in decisions.groupby("action", sort=False):
            fig.add_trace(go.Scatter(
                x=grp["time"], y=grp["desired"], name=str(action), mode="markers",
                # holds are the autoscaler's heartbeat: small and faint; moves stand out
                opacity=0.45 if action == "hold" else 1.0,
                marker={"color": ACTION_COLORS.get(str(action), AMBER), "size": 6 if action == "hold" else 13,
                        "symbol": "triangle-up" if action == "scale_up"
                        else "triangle-down" if action == "scale_down" else "circle",
                        "line": {"color": "#0B0F1A", "width": 1}},
                customdata=grp[["current", "reason"]].to_numpy(),
                hovertemplate="%{customdata[0]} → %{y}: %{customdata[1]}<extra>" + str(action)
                              + "</extra>",
            ))  # fmt: skip
        moves = decisions[decisions["action"] != "hold"].tail(6)
        times = pd.concat([ts["time"] if not ts.empty else decisions["time"], decisions["time"]])
        t0, t1 = times.min(), times.max()
        for _, d in moves.iterrows():
            # a label near the right (left) edge extends leftwards (rightwards): never cut off
            pos = (d["time"] - t0) / (t1 - t0) if t1 > t0 else 0.5
            anchor = "right" if pos > 0.6 else "left" if pos < 0.4 else "center"
            fig.add_annotation(
                x=d["time"], y=d["desired"], text=f"{d['current']}→{d['desired']}: {_short(d['reason'], 30)}",
                showarrow=True, arrowhead=2, arrowcolor=ACTION_COLORS.get(d["action"], AMBER),
                ax=0, ay=-34, xanchor=anchor, font={"size": 10, "color": TEXT},
                bgcolor="rgba(11,15,26,0.85)", bordercolor=ACTION_COLORS.get(d["action"], AMBER),
            )  # fmt: skip
    _layout(fig, title, hovermode="closest")
    fig.update_yaxes(title="consumers", rangemode="tozero", dtick=1)
    return fig


def _short(text: object, n: int = 48) -> str:
    s = str(text)
    return s if len(s) <= n else s[: n - 1] + "…"


def latency_figure(ts: pd.DataFrame) -> go.Figure:
    """Micro-batch latency percentiles (fetch to commit), milliseconds."""
    title = "Batch latency (ms)"
    if ts.empty or ts[["batch_p50_ms", "batch_p95_ms", "batch_p99_ms"]].isna().all().all():
        return empty_figure(title)
    fig = go.Figure()
    for col, name, color in (("batch_p50_ms", "p50", LIME), ("batch_p95_ms", "p95", AMBER),
                             ("batch_p99_ms", "p99", RED)):  # fmt: skip
        fig.add_trace(_glow_line(ts["time"], ts[col], name, color, connectgaps=True))
    return _layout(fig, title)


def dead_letters_figure(ts: pd.DataFrame) -> go.Figure:
    """Dead-lettered events per time bucket."""
    title = "Dead letters"
    if ts.empty:
        return empty_figure(title)
    fig = go.Figure(go.Bar(x=ts["time"], y=ts["dead_letters"], name="dead letters",
                           marker={"color": RED}, opacity=0.85))  # fmt: skip
    _layout(fig, title, showlegend=False)
    fig.update_yaxes(rangemode="tozero", tickformat=",d", dtick=None if ts["dead_letters"].max() > 5
                     else 1)  # fmt: skip
    if not ts["dead_letters"].fillna(0).any():
        fig.add_annotation(text="no dead letters in this window", showarrow=False, xref="paper",
                           yref="paper", x=0.5, y=0.5, font={"size": 13, "color": LIME})  # fmt: skip
    return fig


# -- risk -----------------------------------------------------------------------------------
def risk_histogram_figure(hist: pd.DataFrame, threshold: float | None, label: str = "high risk") -> go.Figure:
    """Users per risk bin (``Store.risk_histogram``); bins at or over ``threshold`` (the
    resolved high-risk rule, ``label`` names it; None: not resolved, no line) glow red."""
    title = "Churn-risk distribution"
    if hist.empty or int(hist["users"].sum()) == 0:
        return empty_figure(title)
    mid = (hist["bin_start"] + hist["bin_end"]) / 2
    cut = np.inf if threshold is None else threshold
    colors = [RED if s >= cut else CYAN for s in hist["bin_start"]]
    fig = go.Figure(go.Bar(
        x=mid, y=hist["users"], width=hist["bin_end"] - hist["bin_start"],
        marker={"color": colors, "line": {"color": "#0B0F1A", "width": 1}}, opacity=0.9,
        customdata=hist[["bin_start", "bin_end"]].to_numpy(),
        hovertemplate="risk %{customdata[0]:.2f}–%{customdata[1]:.2f}: %{y:,} users<extra></extra>",
    ))  # fmt: skip
    if threshold is not None:
        fig.add_vline(x=threshold, line={"color": AMBER, "dash": "dash", "width": 2},
                      annotation_text=f"{label} ≥ {threshold:.3g}",
                      annotation_font_color=AMBER, annotation_position="top right")  # fmt: skip
    _layout(fig, title, showlegend=False, hovermode="closest")
    fig.update_xaxes(title="p(churn)", range=[0, 1])
    # most users are low risk: a log axis keeps the few high-risk bins visible
    nonzero = hist["users"][hist["users"] > 0]
    skewed = len(nonzero) > 1 and nonzero.max() > 20 * nonzero.median()
    if skewed:  # decades only, and the axis starts below 1 so a bin of one user shows
        fig.update_yaxes(title="users (log scale)", type="log", dtick=1,
                         range=[np.log10(0.5), np.log10(float(nonzero.max()) * 2)])  # fmt: skip
    else:
        fig.update_yaxes(title="users")
    return fig


def user_history_figure(history: pd.DataFrame, user_id: str, threshold: float | None,
                        label: str = "high risk") -> go.Figure:
    """One user's sampled risk over event time (``Store.score_history``)."""
    title = f"Risk history — {user_id}"
    if history.empty:
        return empty_figure(title, "no history points for this user")
    fig = go.Figure(go.Scatter(
        x=history["time"], y=history["risk"], mode="lines+markers", name="risk",
        line={"color": MAGENTA, "width": 2.4, "shape": "hv"}, marker={"size": 7, "color": MAGENTA},
        customdata=history[["model_version"]].to_numpy(),
        hovertemplate="%{x}<br>risk %{y:.3f}<br>model v%{customdata[0]}<extra></extra>",
    ))  # fmt: skip
    if threshold is not None:
        fig.add_hline(y=threshold, line={"color": AMBER, "dash": "dash"},
                      annotation_text=f"{label} ≥ {threshold:.3g}", annotation_font_color=AMBER)  # fmt: skip
    _layout(fig, title, showlegend=False)
    fig.update_yaxes(title="p(churn)", range=[0, 1])
    return fig


# -- revenue --------------------------------------------------------------------------------
def roi_curve_figure(table: pd.DataFrame, chosen_share: float | None = None, currency: str = "USD") -> go.Figure:
    """Net value and ROI against the share contacted (``pipeline.revenue.sweep`` rows)."""
    title = "Net value and ROI vs share contacted"
    if table.empty:
        return empty_figure(title)
    k = table["top_share"] * 100
    fig = go.Figure()
    net = table["net_value"]
    for part, color in ((net.clip(lower=0), LIME), (net.clip(upper=0), RED)):  # gain / loss
        fig.add_trace(go.Scatter(x=k, y=part, mode="lines", line={"width": 0}, fill="tozeroy",
                                 fillcolor=_alpha(color, 0.14), hoverinfo="skip", showlegend=False))
    fig.add_trace(_glow_line(k, net, "net value", LIME))
    fig.add_trace(_glow_line(k, table["roi"], "ROI", MAGENTA, yaxis="y2"))
    best = table.loc[table["net_value"].idxmax()]
    fig.add_trace(go.Scatter(x=[best["top_share"] * 100], y=[best["net_value"]], mode="markers",
                             name=f"best K {best['top_share']:.0%}",
                             marker={"color": AMBER, "size": 12, "symbol": "star"}))  # fmt: skip
    if chosen_share is not None:
        fig.add_vline(x=chosen_share * 100, line={"color": CYAN, "dash": "dot"},
                      annotation_text=f"K = {chosen_share:.0%}", annotation_font_color=CYAN)  # fmt: skip
    _layout(fig, title, height=380)
    # Net value and ROI change sign at the same share (both are negative exactly when the
    # campaign costs more than it saves), so both axes put zero at the same height: with
    # Plotly's independent autoranges, the ROI line crossed "0 %" above or below the
    # shaded loss area and read as a contradiction.
    y_range, y2_range = zero_aligned_ranges(net, table["roi"])
    fig.update_layout(
        xaxis={"title": "top-K contacted (% of users by risk)"},
        yaxis={"title": f"net value ({currency})", "zeroline": True, "zerolinecolor": "rgba(215,227,255,0.35)",
               "range": y_range},
        yaxis2={"title": "ROI", "overlaying": "y", "side": "right", "showgrid": False,
                "zeroline": False, "tickformat": ".0%", "range": y2_range},
    )  # fmt: skip
    return fig


def zero_aligned_ranges(a: pd.Series, b: pd.Series, pad: float = 0.06) -> tuple[list[float], list[float]]:
    """Axis ranges for two series on twin y axes with zero at the same height. Each range
    is ``[-f * S, (1 - f) * S]``: the same share ``f`` of it under zero, ``S`` the least
    that covers its series; ``f`` is the share (in steps of 1 %) that stretches the worse
    of the two axes least. Both get the same ``pad`` share of margin.

    >>> zero_aligned_ranges(pd.Series([-10.0, 30.0]), pd.Series([-0.1, 0.3]), pad=0)
    ([-10.0, 30.0], [-0.1, 0.3])
    """
    sides = []
    for s in (a, b):
        v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        neg, pos = (max(-float(v.min()), 0.0), max(float(v.max()), 0.0)) if v.size else (0.0, 0.0)
        sides.append((neg, pos) if neg + pos > 0 else (1.0, 1.0))

    def spans(f: float) -> list[float]:
        return [max(neg / f, pos / (1 - f)) for neg, pos in sides]

    best = min((i / 100 for i in range(1, 100)),
               key=lambda f: max(sp / (neg + pos) for sp, (neg, pos) in zip(spans(f), sides, strict=True)))  # fmt: skip
    out = []
    for span in spans(best):
        lo, hi = -best * span, (1 - best) * span
        out.append([round(lo - pad * span, 12), round(hi + pad * span, 12)])
    return out[0], out[1]


# -- realised performance -----------------------------------------------------------------
def realised_figure(rows: pd.DataFrame, metric: str, label: str, test_value: float | None = None,
                    champion: str | None = None) -> go.Figure:
    """One realised metric per scoring day and model version, its bootstrap 95 % band,
    and (dashed) the champion's training-time test figure for comparison.

    >>> rows = pd.DataFrame({"day": pd.to_datetime(["2026-03-01", "2026-03-02"], utc=True),
    ...     "model_version": ["2", "2"], "roc_auc": [0.8, 0.78], "roc_auc_low": [0.75, 0.7],
    ...     "roc_auc_high": [0.85, 0.84], "n": [900, 910], "positives": [40, 38]})
    >>> [t.name for t in realised_figure(rows, "roc_auc", "ROC-AUC", 0.81, "2").data]
    ['v2 95% interval', 'v2 realised', 'v2 at training (test window)']
    """
    title = f"Realised {label} by scoring day"
    if rows is None or rows.empty or metric not in rows:
        return empty_figure(title, "no scoring day has matured yet")
    fig = go.Figure()
    colors = [CYAN, MAGENTA, LIME, AMBER, VIOLET, RED]
    versions = sorted(rows["model_version"].astype(str).unique(), key=lambda v: (len(v), v))
    for i, version in enumerate(versions):
        part = rows[rows["model_version"].astype(str) == version].sort_values("day")
        color = colors[i % len(colors)]
        lo, hi = part.get(f"{metric}_low"), part.get(f"{metric}_high")
        if lo is not None and hi is not None and lo.notna().any():
            fig.add_trace(go.Scatter(
                x=pd.concat([part["day"], part["day"][::-1]]), y=pd.concat([hi, lo[::-1]]), fill="toself",
                fillcolor=_alpha(color, 0.15), line={"width": 0}, name=f"v{version} 95% interval",
                hoverinfo="skip", showlegend=False))  # fmt: skip
        fig.add_trace(_glow_line(
            part["day"], part[metric], f"v{version} realised", color, mode="lines+markers",
            customdata=part[["n", "positives"]].to_numpy(),
            hovertemplate="%{x|%Y-%m-%d}<br>%{y:.3f} · %{customdata[0]:,} users, %{customdata[1]:,} churned"
                          "<extra></extra>"))  # fmt: skip
        if test_value is not None and test_value == test_value and version == champion:
            fig.add_trace(go.Scatter(x=[part["day"].min(), part["day"].max()], y=[test_value] * 2, mode="lines",
                                     line={"color": color, "dash": "dash", "width": 1.5},
                                     name=f"v{version} at training (test window)"))  # fmt: skip
    _layout(fig, title)
    return fig


# -- drift ----------------------------------------------------------------------------------
def drift_share_figure(runs: pd.DataFrame, warning: float, critical: float) -> go.Figure:
    """Share of drifted features per check, over warning / critical bands."""
    title = "Share of drifted features"
    if runs.empty:
        return empty_figure(title)
    fig = go.Figure()
    fig.add_hrect(y0=warning, y1=critical, fillcolor=AMBER, opacity=0.10, line_width=0,
                  annotation_text="warning", annotation_position="top left")  # fmt: skip
    fig.add_hrect(y0=critical, y1=1, fillcolor=RED, opacity=0.10, line_width=0,
                  annotation_text="critical", annotation_position="top left")  # fmt: skip
    levels = runs["level"] if "level" in runs else pd.Series(["Healthy"] * len(runs))
    level_color = {"Healthy": LIME, "Warning": AMBER, "Critical": RED}
    fig.add_trace(_glow_line(
        runs["time"], runs["share"], "drifted share", CYAN, mode="lines+markers",
        marker={"size": 9, "color": [level_color.get(lv, CYAN) for lv in levels],
                "line": {"color": "#0B0F1A", "width": 1}},
        customdata=levels.to_numpy(), hovertemplate="%{x}<br>%{y:.0%} drifted · %{customdata}<extra></extra>",
    ))  # fmt: skip
    _layout(fig, title, showlegend=False)
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return fig


def drift_heatmap_figure(features: pd.DataFrame) -> go.Figure:
    """Per-feature drift score per check (rows: features, columns: check time)."""
    title = "Drift score by feature"
    if features.empty:
        return empty_figure(title)
    grid = features.pivot_table(index="feature", columns="time", values="score", aggfunc="last")
    fig = go.Figure(go.Heatmap(
        z=grid.to_numpy(), x=grid.columns, y=grid.index.astype(str),
        colorscale=[[0, "#0B0F1A"], [0.35, "#3B1F7A"], [0.7, MAGENTA], [1, AMBER]],
        colorbar={"title": "score"}, hovertemplate="%{y}<br>%{x}<br>score %{z:.3f}<extra></extra>",
    ))  # fmt: skip
    _layout(fig, title, height=max(320, 22 * len(grid) + 120), hovermode="closest")
    fig.update_xaxes(showgrid=False)
    fig.update_yaxes(showgrid=False)
    return fig
