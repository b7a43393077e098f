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
risk; see :mod:`pipeline.store.queries`); reasons are stored for the users the stream's
high-risk rule marks (:mod:`pipeline.highrisk`). The report resolves the same rule on the
store's current scores (with the base rate of the champion the workers follow) and
prints it with its threshold and how many active users it marks, the line the dashboard
shows too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.highrisk import HighRiskRule, ResolvedThreshold, resolve_in_store
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
    high_risk: ResolvedThreshold | None = None
    high_risk_users: int = 0  # active users the rule marks now
    active_users: int = 0
    high_risk_monthly_revenue: float = 0.0
    dead_letters: dict[str, int] = field(default_factory=dict)  # reason -> records of this run

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
            "dead_letters": sum(self.dead_letters.values()), "dead_letter_reasons": dict(self.dead_letters),
            "high_risk": None if self.high_risk is None else self.high_risk.as_dict() | {
                "users": self.high_risk_users, "active_users": self.active_users,
                "monthly_revenue": round(self.high_risk_monthly_revenue, 2)},
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
        if self.dead_letters:  # quarantined, never dropped silently: say so where the user looks
            n = sum(self.dead_letters.values())
            why = "; ".join(f"{c:,} {r[:80]}" for r, c in sorted(self.dead_letters.items(), key=lambda x: -x[1])[:3])
            out.append(f"dead letters: {n:,} record(s) not applied ({why}); see `churn tail --dlq -p P`")
        if self.high_risk is not None:
            out.append(self.high_risk_line())
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
            cut = "" if self.high_risk is None or self.high_risk.threshold is None else f" {self.high_risk.threshold:.4g}"
            out.append(f"  (-: risk under the high-risk threshold{cut} when scored, no reasons stored)")
        return out

    def high_risk_line(self) -> str:
        """The rule, its threshold and what it marks: 'high risk = risk >= 0.045 (3x ...): 12 of ...'."""
        hr = self.high_risk
        if hr is None or hr.threshold is None:
            return "" if hr is None else hr.text()
        share = self.high_risk_users / self.active_users if self.active_users else 0.0
        return (f"{hr.text()}: {self.high_risk_users:,} of {self.active_users:,} active users ({share:.1%}), "
                f"${self.high_risk_monthly_revenue:,.2f}/mo revenue")


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
    high_risk: HighRiskRule | str | None = None,
    data_dir: Path | str | None = None,
    version_from_scores: bool = True,
) -> StreamReport:
    """The summary of a run that started with the group's committed offsets ``before``
    (partitions missing there count from the log's start). ``high_risk``: the stream's
    rule (default: the default rule); ``data_dir``: where the group's champion pointer is,
    for the base rate a relative rule multiplies."""
    after = log.committed(group)
    lag, events = {}, 0
    for p in range(log.num_partitions):
        start = before.get(p, log.start_offset(p))
        end = after.get(p, start)
        events += max(end - start, 0)
        lag[p] = max(log.end_offset(p) - end, 0)
    spans = {p: (before.get(p, log.start_offset(p)), after.get(p, 0)) for p in range(log.num_partitions)}
    dead = run_dead_letters(log, spans)
    top = top_users(store, top_k)
    if model_version is None and top and version_from_scores:  # after Ctrl-C: the version that scored them
        model_version = top[0].model_version
    resolved = report_threshold(store, group, high_risk, data_dir)
    summary = store.score_summary(high_risk=resolved.cut)
    return StreamReport(group, stopped, float(seconds), events, lag, top, model_version, resolved,
                        summary.high_risk_users, summary.users, summary.high_risk_monthly_revenue, dead)


DEAD_LETTER_SCAN = 100_000  # most dead letters read back per partition (newest first)


def run_dead_letters(log: PartitionLog, spans: Mapping[int, tuple[int, int]]) -> dict[str, int]:
    """Reasons and counts of the dead letters of source records in ``spans`` (partition ->
    ``[start, end)`` offsets this run committed), read back from the end of ``<topic>.dlq``.

    A partition's dead letters are appended in source-offset order, so the scan stops at
    the first one before ``start`` or at one out of order (an earlier run, before a rewind)."""
    from collections import Counter

    from pipeline.log.deadletter import dead_letter_log, parse_dead_letter

    if not any(end > start for start, end in spans.values()):
        return {}
    dlq = dead_letter_log(log)
    out: Counter[str] = Counter()
    try:
        for p, (start, end) in spans.items():
            if end <= start:
                continue
            dp = p % dlq.num_partitions
            pos, floor, last, read = dlq.end_offset(dp), dlq.start_offset(dp), end, 0
            while pos > floor and read < DEAD_LETTER_SCAN:
                lo = max(floor, pos - 1000)
                recs, at = [], lo
                while at < pos:  # fetch stops at max_bytes (a dead letter can hold a huge line)
                    got = dlq.fetch(dp, at, max_records=pos - at)
                    if not got:
                        break
                    recs += got
                    at = got[-1].offset + 1
                read += len(recs)
                pos = lo
                for rec in reversed(recs):
                    dl = parse_dead_letter(rec.value)
                    if dl.source_topic != log.name or dl.source_partition != p or dl.source_offset >= end:
                        continue
                    if dl.source_offset < start or dl.source_offset >= last:
                        pos = floor  # before this run, or an earlier run's: done with the partition
                        break
                    last = dl.source_offset
                    out[dl.reason] += 1
    finally:
        dlq.close()
    return dict(out)


def report_threshold(
    store: Any, group: str, high_risk: HighRiskRule | str | None = None, data_dir: Path | str | None = None
) -> ResolvedThreshold:
    """The stream's high-risk rule resolved on the store's current scores, with the base
    rate of the champion group ``group`` follows under ``data_dir`` (the report and the
    dashboard both call this, so they show the same threshold)."""
    from pipeline.stream.config import StreamPaths
    from pipeline.stream.model import champion_base_rate

    rule = HighRiskRule.parse(high_risk) if high_risk is not None else HighRiskRule()
    rate, source, version = None, "", None
    if rule.needs_base_rate:
        pointer = None if data_dir is None else StreamPaths(Path(data_dir), group).champion
        if pointer is not None:
            rate, source, version = champion_base_rate(pointer)
        if version is None:
            where = "" if pointer is None else f" ({pointer} does not exist)"
            return ResolvedThreshold(rule, None, problem=f"stream group {group!r} has no champion exported yet{where}; "
                                     "the stream writes it when it adopts a champion")
    return resolve_in_store(rule, store, rate, source, version)


def configured_threshold(store: Any, settings: Any, group: str | None = None) -> ResolvedThreshold:
    """:func:`report_threshold` for the stream as ``settings`` configure it (``CHURN_STREAM_HIGH_RISK``,
    the data directory; group default ``churn-stream``): what the demo and dashboard show."""
    from pipeline.stream.config import StreamConfig

    cfg = StreamConfig.from_settings(settings)
    return report_threshold(store, group or cfg.group, cfg.high_risk_rule, settings.data_dir)
