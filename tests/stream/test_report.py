"""The closing report of a stream run: events, events/s, lag, top at-risk active users."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from pipeline.store import Store
from pipeline.stream.report import stream_report

T = datetime(2026, 3, 1, tzinfo=UTC)
REASONS = [
    {"feature": "failed_payments_30d", "value": 2.0, "contribution": 0.61},
    {"feature": "days_since_last_session", "value": 9.0, "contribution": 0.2},
]


def _scores(store: Store) -> None:
    rows = [
        {"user_id": "gone", "risk": 0.99, "active": False, "plan": None, "monthly_revenue": 0.0},
        {
            "user_id": "hot",
            "risk": 0.9,
            "reasons": REASONS,
            "plan": "premium",
            "monthly_revenue": 19.99,
        },
    ]
    rows += [
        {"user_id": f"u{i:02d}", "risk": i / 100, "plan": "basic", "monthly_revenue": 8.99}
        for i in range(20)
    ]
    store.upsert_scores([r | {"model_version": "4", "features_time": T} for r in rows])  # fmt: skip


def test_report_counts_the_runs_events_the_final_lag_and_active_top_users(log, store) -> None:
    ends = {p: log.end_offset(p) for p in range(2)}
    log.commit("g", {0: 100, 1: 50}, T)
    before = log.committed("g")
    log.commit("g", {0: ends[0], 1: 250}, T)
    _scores(store)
    r = stream_report(store, log, "g", before, seconds=2.0, stopped="stopped", model_version="4")
    assert r.events == ends[0] - 100 + 200 and r.events_per_s == r.events / 2
    assert r.lag == {0: 0, 1: ends[1] - 250} and r.total_lag == ends[1] - 250
    assert [u.user_id for u in r.top] == ["hot", *[f"u{i:02d}" for i in range(19, 10, -1)]]
    text = "\n".join(r.lines())
    assert f"{r.events:,} events ({r.events_per_s:,.0f} events/s)" in text
    assert f"p1={ends[1] - 250:,}" in text and "champion v4" in text
    assert "top 10 at-risk active users" in text and "gone" not in text
    assert "failed_payments_30d (+0.61), days_since_last_session (+0.20)" in text
    assert r.as_dict()["top_at_risk"][0]["reasons"] == REASONS


def test_report_of_a_group_that_never_committed_counts_from_the_log_start(log, store) -> None:
    r = stream_report(store, log, "new", {}, seconds=0.0, stopped="stopped")
    assert (
        r.events == 0
        and r.events_per_s == 0.0
        and r.lag == {p: log.end_offset(p) for p in range(2)}
    )
    assert r.lines()[-1] == "no active subscriber scored yet"


@pytest.mark.parametrize("interrupt", [False, True])
def test_churn_stream_ends_with_the_report_even_after_ctrl_c(
    monkeypatch, data_dir, log, interrupt
) -> None:
    """The flow itself is replaced (it is tested in test_stream_flow): this checks what the
    command prints when the flow returns, and when Ctrl-C interrupts it."""
    import flows.stream
    from churn.cli.app import app
    from churn.cli.stream import register

    def fake_stream(**options):
        log.commit(options["group"] or "churn-stream", {0: 30, 1: 20}, T)
        with Store(f"sqlite:///{data_dir / 'churn.db'}") as store:
            _scores(store)
        if interrupt:
            raise KeyboardInterrupt
        return {"group": "churn-stream", "topic": "events", "stopped": "caught up", "model_version": "4",
                "workers": 1, "restarts": 0, "health": "Healthy"}  # fmt: skip

    monkeypatch.setattr(flows.stream, "stream", fake_stream)
    if "stream" not in {c.name for c in app.registered_commands}:
        register(app)
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), "stream", "--max-seconds", "1"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert ("interrupted (Ctrl-C)" if interrupt else "caught up") in out and "champion v4" in out
    assert "50 events (" in out and "events/s" in out and "final lag" in out
    assert "top 10 at-risk active users" in out and "hot" in out and "gone" not in out
