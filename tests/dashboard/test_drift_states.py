"""The Drift page tells "no checks yet", "checks skipped (why)" and "checks failing (why)"
apart (issue 18): each state from a store holding just those drift runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dashboard import data
from pipeline.drift.check import DriftResult, FeatureDrift
from pipeline.store import Store
from tests.dashboard.test_app import run_page

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SKIP = "window has 458 rows (after de-duplication), fewer than min_rows=500: wait for more scores or lower CHURN_DRIFT_MIN_ROWS"
FAIL = "BrokenProcessPool: A child process terminated abruptly"


def _checked(at: datetime) -> DriftResult:
    f = FeatureDrift("plan_price", "Wasserstein distance (normed)", 0.02, 0.1, False)
    return DriftResult(at, at - timedelta(days=1), at, "2", 900, 5_000, 0, 0.0, False, None, (f,), 1.0)


def _env(tmp_path, statuses: list[str]) -> dict[str, str]:
    (tmp_path / "data").mkdir()
    with Store(f"sqlite:///{tmp_path / 'data' / 'churn.db'}") as store:
        for i, status in enumerate(statuses):
            at = T0 + timedelta(hours=i)
            if status == "checked":
                store.record_drift_run(_checked(at), level="Healthy", reasons=["0% of features drifted"])
            else:
                store.record_drift_status(time=at, model_version="2", status=status, rows=458,
                                          reason=SKIP if status == "skipped" else FAIL)
    return {"CHURN_DATA_DIR": str(tmp_path / "data"),
            "CHURN_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"}


@pytest.mark.parametrize(("statuses", "kind"), [
    ([], "none"), (["skipped", "skipped"], "skipped"), (["checked", "failed"], "failing"),
])
def test_checks_state(statuses, kind, tmp_path):
    env = _env(tmp_path, statuses)
    with Store(f"sqlite:///{env['CHURN_DATA_DIR']}/churn.db", read_only=True) as store:
        view = data.load_drift(store, tmp_path / "data")
    state = data.checks_state(view.checks)
    assert state.kind == kind
    assert len(view.runs) == statuses.count("checked")  # charts and KPIs: the checks that ran
    if kind == "skipped":
        assert state.skipped == 2 and SKIP in state.text
    if kind == "failing":
        assert state.failed == 1 and FAIL in state.text


def test_page_with_only_skipped_checks_says_why(tmp_path, use_env):
    use_env(_env(tmp_path, ["skipped", "skipped"]))
    at = run_page("drift")
    assert any("skipped" in w.value and "fewer than min_rows=500" in w.value for w in at.warning)
    assert "No drift check has run yet" in " ".join(i.value for i in at.info)
    assert "no drift checks yet" not in " ".join(i.value for i in at.info)
    table = at.dataframe[0].value
    assert table["status"].tolist() == ["skipped", "skipped"] and table["status_reason"].str.contains("min_rows").all()


def test_page_with_a_failing_check_shows_the_error(tmp_path, use_env):
    use_env(_env(tmp_path, ["checked", "failed"]))
    at = run_page("drift")
    assert any("failing" in e.value and FAIL in e.value for e in at.error)
    assert [s.value for s in at.subheader].count("Checks that did not run") == 1
    assert at.metric[0].label == "Checks" and at.metric[0].value == "1"


def test_page_without_checks_says_what_to_run(tmp_path, use_env):
    use_env(_env(tmp_path, []))
    at = run_page("drift")
    assert "no drift checks yet" in " ".join(i.value for i in at.info)
    assert not at.warning and not at.error
