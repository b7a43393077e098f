"""The closed loop in words: one line when drift opens an episode, when its retrain is deferred
(until when, and why), requested, sent or skipped, one when that training run starts (or ends
badly), one with the gate's decision and both scores.

Every line is read from what the systems record -- the store's drift runs, Prefect's flow
runs, the registry's gate tags -- never inferred, and each is said once.

>>> n = Narrator(drift=lambda: [], train_runs=lambda: [], gated=lambda: [("1", {"gate.decision": "promoted",
...     "gate.reason": "first model: no champion yet", "gate.challenger.roc_auc": "0.81",
...     "gate.window": "2026-04-20..2026-05-18"})])
>>> n.poll()
['gate: churn v1 PROMOTED: first model: no champion yet (challenger ROC-AUC 0.8100 on the test window 2026-04-20..2026-05-18)']
>>> n.poll()
[]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flows.retrain import DRIFT_RETRAIN_TAG

STARTED = {"RUNNING", "COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
BAD = {"FAILED", "CRASHED", "CANCELLED"}


class Narrator:
    """Polls three sources; :meth:`poll` returns the lines not said yet (oldest first).

    ``drift()``: the store's checked drift runs (rows with ``run_id``, ``time``, ``level``,
    ``model_version``, ``drifted_count``, ``features``, ``reasons``); ``train_runs()``: the
    train flow's runs from Prefect's API; ``gated()``: ``(version, tags)`` from the registry;
    ``decisions()``: the store's retrain decisions, oldest first (a deferral is said once per
    episode and due date, not at every check).
    """

    def __init__(self, drift: Callable[[], Iterable[Mapping[str, Any]]],
                 train_runs: Callable[[], Iterable[Mapping[str, Any]]],
                 gated: Callable[[], Iterable[tuple[str, Mapping[str, str]]]],
                 decisions: Callable[[], Iterable[Mapping[str, Any]]] = lambda: ()) -> None:
        self.sources = (drift, train_runs, gated)
        self.decisions = decisions
        self.said: set[str] = set()

    def mark_said(self, keys: Iterable[str]) -> None:
        """What was already reported another way (the demo's first training)."""
        self.said |= set(keys)

    def _once(self, key: str, line: str, out: list[str]) -> None:
        if key not in self.said:
            self.said.add(key)
            out.append(line)

    def poll(self) -> list[str]:
        from pipeline.drift.episodes import DEFERRED
        from pipeline.drift.loop import (
            RETRAIN_REQUESTED,  # here, not at import: `churn --help` stays fast
        )
        from pipeline.training.report import gate_line_from_tags

        drift, train_runs, gated = self.sources
        out: list[str] = []
        for r in drift():
            reasons = list(r.get("reasons") or [])
            asked = next((x for x in reasons if str(x).startswith(RETRAIN_REQUESTED)), None)
            if asked is None:
                continue
            rest = [str(x) for x in reasons if x != asked]
            why = (rest[0] + (f"; {len(rest) - 1} more reason(s) on the Drift page" if len(rest) > 1 else "")
                   if rest else "(no reason stored)")
            self._once(f"drift:{r['run_id']}", f"drift: {r['level']} on champion v{r['model_version']} "
                       f"({int(r['drifted_count'])} of {int(r['features'])} features drifted: {why}) - retrain "
                       f"requested (check at {_hhmm(r['time'])})", out)
        for d in self.decisions():
            line = _decision_line(d)
            if line is not None:
                key = (f"decision:{d.get('episode_id') or d.get('model_version')}:{d['decision']}:"
                       f"{_day(d.get('due')) if d['decision'] == DEFERRED else d.get('decision_id')}")
                self._once(key, line, out)
        for fr in train_runs():
            state = (fr.get("state") or {}).get("type", "")
            key = f"run:{fr.get('id')}"
            if state in STARTED and key not in self.said:
                by = ("the drift retrain policy" if DRIFT_RETRAIN_TAG in (fr.get("tags") or [])
                      else (fr.get("created_by") or {}).get("display_value") or "a user")
                self._once(key, f"retrain started: train run {fr.get('name')} (created by {by}, "
                                f"deployment train/weekly)", out)
            if state in BAD:
                msg = (fr.get("state") or {}).get("message") or ""
                self._once(f"end:{fr.get('id')}", f"train run {fr.get('name')} ended {state.lower()}: {msg}".rstrip(": "),
                           out)
        for version, tags in gated():
            line = gate_line_from_tags(version, tags)
            if line:
                self._once(f"gate:{version}", line, out)
        return out


def _hhmm(t: Any) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC") if hasattr(t, "strftime") else str(t)


def _day(t: Any) -> str:
    return t.strftime("%Y-%m-%d") if hasattr(t, "strftime") else str(t)


def _decision_line(d: Mapping[str, Any]) -> str | None:
    """One retrain decision as a line; gate outcomes are said from the registry instead."""
    from pipeline.drift.episodes import CLOSED, DEFERRED, GATE_PROMOTED, GATE_REJECTED, OPENED

    kind, why, v = str(d["decision"]), str(d.get("reason") or ""), d.get("model_version")
    if kind in (GATE_PROMOTED, GATE_REJECTED):
        return None
    if kind == OPENED:
        return f"drift episode opened on champion v{v} (event time {_day(d.get('time'))}): {why}"
    if kind == DEFERRED:
        return f"retrain deferred until {_day(d.get('due'))} (event time): {why}"
    if kind == CLOSED:
        return f"drift episode of champion v{v} closed: {why}"
    run = f" (run {d['run']})" if d.get("run") else ""
    return f"retrain {kind}{run}: {why}"
