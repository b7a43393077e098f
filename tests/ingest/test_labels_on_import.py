"""Labels on imported data, both churn definitions, checked with a plain loop over the log."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from pipeline.config import PROJECT_ROOT
from pipeline.ingest import load_mapping
from pipeline.labels import build_snapshots

from .helpers import Env

EXAMPLES = PROJECT_ROOT / "docs" / "examples"
H = 14


def _reference(events, cutoffs, horizon_days):
    """{(user, cutoff): label} for users active at the cutoff - the obviously-correct loop."""
    by_user: dict[str, list] = {}
    for e in events:
        by_user.setdefault(e["user_id"], []).append(
            (datetime.fromisoformat(e["ts"].replace("Z", "+00:00")), e["type"]))
    out = {}
    for t in cutoffs:
        for u, evs in by_user.items():
            signup = max((ts for ts, k in evs if k == "signup" and ts <= t), default=None)
            cancel = max((ts for ts, k in evs if k == "cancel" and ts <= t), default=None)
            if signup is None or (cancel is not None and cancel >= signup):
                continue
            out[(u, t)] = int(any(k == "cancel" and t < ts <= t + timedelta(days=horizon_days) for ts, k in evs))
    return out


@pytest.mark.parametrize("mapping_file", ["music_mapping.yaml", "music_mapping_inactivity.yaml"])
def test_snapshot_labels_follow_the_mapping_churn_definition(tmp_path, mapping_file) -> None:
    env = Env(tmp_path, partitions=2)
    try:
        m = load_mapping(EXAMPLES / mapping_file)
        s = env.run([EXAMPLES / "music_events.csv.gz"], m)
        if m.churn == "inactivity":
            assert s.synthesized["cancel (inactivity)"] == s.events_by_type["cancel"] > 0
        else:
            assert "cancel (inactivity)" not in s.synthesized and s.events_by_type["cancel"] > 100
        snap = build_snapshots(env.log, horizon_days=H, every_days=14)
        assert sum(st.late for st in snap.stats) == 0 and sum(st.invalid for st in snap.stats) == 0
        cut = [c.to_pydatetime() for c in sorted(set(snap.table["cutoff"]))]
        ref = _reference(env.events(), cut, H)
        got = {(u, c.to_pydatetime()): int(y) for u, c, y in
               zip(snap.table["user_id"], snap.table["cutoff"], snap.table["label"], strict=True)}
        assert got == ref
        assert 0.02 < sum(got.values()) / len(got) < 0.5
    finally:
        env.close()
