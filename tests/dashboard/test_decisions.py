"""The Drift page's retrain-decision table: requests and outcomes first, newest first, with
the episode's onset (issue 18)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dashboard.data import decision_table, load_decisions
from pipeline.store import Store

T0 = datetime(2026, 7, 1, tzinfo=UTC)


def test_requests_and_outcomes_first_newest_first_with_the_onset():
    with Store("sqlite://") as store:
        assert load_decisions(store).empty
        eid = store.open_episode(model_version="3", onset=T0, opened_at=T0 + timedelta(days=2), reason="x", now=T0)
        for day, decision, run in ((2, "episode opened", None), (2, "deferred", None), (3, "deferred", None),
                                   (33, "requested", None), (33, "failed to send", None), (34, "requested", None),
                                   (34, "sent", "run-1"), (40, "deferred", None)):
            store.record_retrain_decision(time=T0 + timedelta(days=day), model_version="3", decision=decision,
                                          reason=f"{decision} on day {day}", episode_id=eid, run=run, now=T0)
        t = load_decisions(store)
    outcomes = t[t["decision"].isin(["requested", "sent", "failed to send"])]
    assert list(outcomes.index) == [0, 1, 2, 3]  # all outcomes before any deferral
    assert t["time"].iloc[0] == T0 + timedelta(days=34) and t["time"].iloc[4] == T0 + timedelta(days=40)
    assert t.loc[t["decision"] == "sent", "run"].item() == "run-1"
    assert (t["onset"] == T0).all() and (t["episode"] == "open").all()
    assert decision_table(None, None).empty
