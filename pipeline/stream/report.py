"""The closing summary of a stream run: events, events/s, final lag, top at-risk users.

Built from durable state only (the group's committed offsets in the log, the store's
current scores), so it is the same whether the run ended by ``--max-seconds``,
``--until-caught-up`` or Ctrl-C, and any caller can print one (``churn stream``,
``make demo``)::

    before = log.committed(group)          # when the run starts
    ...                                    # the run
    report = stream_report(store, log, group, before, seconds=elapsed, stopped="stopped")
    print("\\n".join(report.lines()))

Top users are the highest-risk **active** subscribers (a user who cancelled is not at
risk; see :mod:`pipeline.store.queries`); reasons are stored for risk at or above the
stream's alert threshold only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipeline.log.base import PartitionLog


@dataclass(frozen=True)
class TopUser:
    user_id: str
    risk: float
    plan: str | None
    monthly_revenue: float | None
    reasons: list[dict[str, Any]] = field(default_factory=list)
    model_version: str | None = None

    def reasons_text(self, top: int = 3) -> str:
        parts = []
        for r in self.reasons[:top]:
            c = r.get("contribution")
            name = str(r.get("feature", "?"))
            parts.append(name if c is None else f"{name} ({float(c):+.2f})")
        return ", ".join(parts)


@dataclass(frozen=True)
class StreamReport:
    group: str
    stopped: str  # why the run ended: "caught up", "stopped", "interrupted", ...
    seconds: float
    events: int  # records committed by the group during the run
    lag: dict[int, int]  # partition -> log end - committed offset, at the end
    top: list[TopUser]
    model_version: str | None = None

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group, "stopped": self.stopped, "seconds": round(self.seconds, 3),
            "events": self.events, "events_per_s": round(self.events_per_s, 1),
            "lag": {str(p): v for p, v in sorted(self.lag.items())}, "total_lag": self.total_lag,
            "model_version": self.model_version,
            "top_at_risk": [
                {"user_id": u.user_id, "risk": u.risk, "plan": u.plan,
                 "monthly_revenue": u.monthly_revenue, "reasons": u.reasons}
                for u in self.top
            ],
        }  # fmt: skip

    def lines(self) -> list[str]:
        """Plain text, a few lines: what `churn stream` prints when it ends."""
        lag = ", ".join(f"p{p}={v:,}" for p, v in sorted(self.lag.items())) or "-"
        out = [
            f"stream {self.group}: {self.stopped} after {self.seconds:.1f} s; {self.events:,} events "
            f"({self.events_per_s:,.0f} events/s); "
            + (f"champion v{self.model_version}" if self.model_version else "no champion loaded"),
            f"final lag {self.total_lag:,} records ({lag})",
        ]
        if not self.top:
            out.append("no active subscriber scored yet")
            return out
        out.append(f"top {len(self.top)} at-risk active users:")
        width = max(len(u.user_id) for u in self.top)
        for u in self.top:
            plan = u.plan or "-"
            rev = "-" if u.monthly_revenue is None else f"${u.monthly_revenue:,.2f}/mo"
            why = u.reasons_text() or "-"
            out.append(f"  {u.user_id:<{width}}  risk {u.risk:.3f}  {plan:<8} {rev:>12}  {why}")
        if any(not u.reasons for u in self.top):
            out.append("  (-: risk under the alert threshold, no reasons stored)")
        return out


def top_users(store: Any, k: int = 10) -> list[TopUser]:
    """The ``k`` highest-risk active subscribers with their stored reasons."""
    df = store.current_scores(top_k=k)
    out = []
    for row in df.itertuples(index=False):
        reasons = row.reasons
        if isinstance(reasons, str):
            reasons = json.loads(reasons)
        rev = None if pd.isna(row.monthly_revenue) else float(row.monthly_revenue)
        out.append(
            TopUser(str(row.user_id), float(row.risk), row.plan or None, rev, list(reasons or []),
                    str(row.model_version))
        )  # fmt: skip
    return out


def stream_report(
    store: Any,
    log: PartitionLog,
    group: str,
    before: Mapping[int, int],
    *,
    seconds: float,
    stopped: str,
    model_version: str | None = None,
    top_k: int = 10,
    version_from_scores: bool = True,
) -> StreamReport:
    """The summary of a run that started with the group's committed offsets ``before``
    (partitions missing there count from the log's start)."""
    after = log.committed(group)
    lag, events = {}, 0
    for p in range(log.num_partitions):
        start = before.get(p, log.start_offset(p))
        end = after.get(p, start)
        events += max(end - start, 0)
        lag[p] = max(log.end_offset(p) - end, 0)
    top = top_users(store, top_k)
    if model_version is None and top and version_from_scores:  # after Ctrl-C: the version that scored them
        model_version = top[0].model_version
    return StreamReport(group, stopped, float(seconds), events, lag, top, model_version)
