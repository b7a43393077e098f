"""Every page under ``streamlit.testing.v1.AppTest``: against the store, drift reports and
MLflow registry of a small real run (``populated``), a fresh install and an empty store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import data

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
PAGES = ["overview", "stream", "risk", "revenue", "drift", "model"]
SOURCE = {"overview": "store", "stream": "store", "risk": "store", "revenue": "store", "drift": "drift",
          "model": "registry"}  # what each page reads first: its empty state names that source's next step


def run_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    if page != "overview":
        at.switch_page(f"views/{page}.py")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def markdown_text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def number(text: str) -> float:
    """A tile's value as a number: '1,234', '$516', 'EUR 1.25M', '19.8k', '74 d' -> float."""
    import re

    m = re.search(r"(-?[\d,]*\.?\d+)\s*([kMB]?)", text)
    assert m, f"no number in {text!r}"
    return float(m.group(1).replace(",", "")) * {"": 1, "k": 1e3, "M": 1e6, "B": 1e9}[m.group(2)]


@pytest.mark.slow  # the session\'s real run (~40-80 s, once)
def test_overview_populated(populated, use_env) -> None:
    use_env(populated["env"])
    data.registry_loader().get(populated["uri"], wait=True)  # as if the app had warmed it
    at = run_page("overview")
    kpis = metrics(at)
    assert kpis["Users scored"] == f"{populated['users']:,}"
    # the default rule (3x the champion's base rate), resolved as the stream's report does
    assert populated["high_risk_threshold"] is not None and populated["high_risk_threshold"] < 0.5
    assert kpis[f"High risk (≥ {populated['high_risk_threshold']:.3g})"] == f"{populated['high_risk']:,}"
    assert populated["high_risk_text"] in [c.value for c in at.caption]
    assert kpis["Champion model"] == f"v{populated['champion']}"
    assert kpis["Active consumers"] == str(populated["consumers"])
    assert kpis["Total lag"] == f"{populated['total_lag']:,}"
    assert number(kpis["Revenue at risk / month"]) > 0
    assert 'data-level="' in markdown_text(at)  # the alert banner
    if populated["churned"]:  # cancelled users are named, not counted
        users = next(m for m in at.metric if m.label == "Users scored")
        assert f"{populated['churned']:,} cancelled" in users.proto.delta


@pytest.mark.slow  # the session\'s real run (~40-80 s, once)
def test_overview_does_not_wait_for_mlflow(populated, use_env, monkeypatch) -> None:
    """A cold registry (MLflow still importing) shows '…' instead of blocking the page."""
    use_env(populated["env"])
    slow = data.RegistryLoader(load=lambda uri: __import__("time").sleep(30))
    monkeypatch.setattr(data, "_LOADER", slow)
    at = run_page("overview")
    assert metrics(at)["Champion model"] == "…"
    assert metrics(at)["Users scored"] == f"{populated['users']:,}"


@pytest.mark.slow  # the session\'s real run (~40-80 s, once)
def test_stream_populated(populated, use_env) -> None:
    use_env(populated["env"])
    at = run_page("stream")
    assert metrics(at)["Consumers"] == str(populated["consumers"])
    charts = at.get("plotly_chart")
    assert len(charts) == 6
    assert all("no data yet" not in c.proto.spec for c in charts)
    assert "scale_up" in " ".join(c.proto.spec for c in charts)  # the autoscaler's decision
    parts = at.dataframe[0].value
    assert sorted(parts["partition"]) == [0, 1, 2, 3] and (parts["lag"] == 0).all()


@pytest.mark.slow  # the session\'s real run (~40-80 s, once)
def test_risk_populated(populated, use_env) -> None:
    use_env(populated["env"])
    at = run_page("risk")
    assert metrics(at)["Users scored"] == f"{populated['users']:,}"
    # the same resolved high-risk threshold as the overview and the stream's report
    assert metrics(at)[f"High risk (≥ {populated['high_risk_threshold']:.3g})"] == f"{populated['high_risk']:,}"
    assert populated["high_risk_text"] in [c.value for c in at.caption]
    top = at.dataframe[0].value
    assert len(top) == 50 and top["risk"].is_monotonic_decreasing
    assert top["reasons"].iloc[0]  # high-risk users carry their SHAP reasons
    assert at.text_input(key="lookup_user").value == populated["top_user"]
    assert len(at.get("plotly_chart")) == 2  # histogram + the user's history
    assert f"Risk history — {populated['top_user']}" in at.get("plotly_chart")[-1].proto.spec
    other = top["user_id"].iloc[7]
    at.text_input(key="lookup_user").set_value(other).run()
    assert not at.exception
    assert f"Risk history — {other}" in at.get("plotly_chart")[-1].proto.spec
    at.text_input(key="lookup_user").set_value("nobody").run()
    assert not at.exception and "No scores for user 'nobody'" in at.warning[0].value


@pytest.mark.slow  # the session\'s real run (~40-80 s, once)
def test_risk_names_unreadable_history_segments(populated, use_env, monkeypatch) -> None:
    """A damaged history segment (the store skips it, ``Store.score_history``) is said on
    the user's chart, not silently missing."""
    from pipeline.store import Store

    real = Store.score_history

    def damaged(self, *args, **kwargs):
        df = real(self, *args, **kwargs)
        df.attrs["unreadable_segments"] = [7]
        return df

    use_env(populated["env"])
    monkeypatch.setattr(Store, "score_history", damaged)
    at = run_page("risk")
    assert any("1 score history segment(s) of the store are unreadable (seq 7)" in w.value for w in at.warning)
    assert len(at.get("plotly_chart")) == 2  # the chart is still drawn from the rest


@pytest.mark.slow  # the session\'s real run (~40-80 s, once)
def test_revenue_populated(populated, use_env) -> None:
    use_env(populated["env"])
    at = run_page("revenue")
    before = metrics(at)
    assert number(before["Revenue saved"]) > 0
    at.slider(key="k").set_value(40).run()
    assert not at.exception
    after = metrics(at)
    assert after["Users contacted"] == f"{0.4 * populated['users']:,.0f}"
    assert number(after["Revenue saved"]) > number(before["Revenue saved"])
    assert len(at.get("plotly_chart")) == 1


@pytest.mark.slow  # the session\'s real run (~40-80 s, once)
def test_drift_populated(populated, use_env) -> None:
    use_env(populated["env"])
    at = run_page("drift")
    heads = [s.value for s in at.subheader]
    assert "Latest Evidently report" in heads and "Retrain decisions" in heads  # the monitor records its decisions
    kpis = metrics(at)
    assert kpis["Checks"] == str(populated["drift_runs"])
    assert kpis["Level (last)"] == populated["drift_level"] == "Critical"
    charts = at.get("plotly_chart")
    assert len(charts) == 2 and all("no data yet" not in c.proto.spec for c in charts)
    from pipeline.drift.episodes import OUTCOMES, SENT

    decisions = at.dataframe[0].value  # the retrain decisions the monitor stored, outcomes first
    assert (decisions["decision"] == SENT).sum() == 2, decisions  # the two critical checks (retrain_policy=immediate)
    assert (decisions["model_version"] == populated["champion"]).all()
    outcome = decisions["decision"].isin(OUTCOMES).tolist()
    assert outcome == sorted(outcome, reverse=True)  # requests and outcomes before deferrals/openings
    assert decisions["reason"].str.len().gt(0).all()  # every decision says why


@pytest.mark.slow  # the session\'s real run (~40-80 s, once)
def test_model_populated(populated, use_env) -> None:
    use_env(populated["env"])
    at = run_page("model")
    heads = [s.value for s in at.subheader]
    assert f"Champion: v{populated['champion']}" in heads
    challenger = populated["challenger"]
    assert f"Challenger: {'none' if challenger is None else 'v' + challenger}" in heads
    history = at.dataframe[0].value
    assert history["version"].iloc[-1] == populated["champion"]
    assert "first model" in " ".join(history["reason"].astype(str))
    assert {m.label for m in at.metric} >= {"roc_auc", "pr_auc", "Age"}
    # no MLflow UI answers in this test: no link into it, and the page says which service is down
    assert "#/models/churn/versions/" not in markdown_text(at)
    assert any("Not running: MLflow" in c.value for c in at.caption)
    versions = at.dataframe[1].value
    assert sorted(versions["version"]) == sorted(populated["versions"])


@pytest.mark.slow  # the session\'s real run (~40-80 s, once)
def test_dashboard_never_writes_the_store(populated, use_env) -> None:
    use_env(populated["env"])
    db = Path(populated["data_dir"]) / "churn.db"
    before = db.read_bytes()
    for page in PAGES:
        run_page(page)
    assert db.read_bytes() == before


@pytest.mark.parametrize("version", [1, 99])
def test_store_of_another_schema_version_is_one_clear_line(version, tmp_path, use_env) -> None:
    from pipeline.store import Store

    (tmp_path / "data").mkdir()
    db = tmp_path / "data" / "churn.db"
    Store(f"sqlite:///{db}").close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (version,))
    use_env({"CHURN_DATA_DIR": str(tmp_path / "data"),
             "CHURN_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"})
    for page in PAGES[:-1]:  # the Model page reads only the registry
        at = run_page(page)
        errors = " ".join(e.value for e in at.error)
        assert f"schema version {version}" in errors, page
        assert ("older" if version == 1 else "newer") in errors, page


@pytest.mark.parametrize("page", PAGES)
def test_fresh_install_shows_next_steps(page, empty, use_env) -> None:
    use_env(empty["env"])
    at = run_page(page)
    infos = " ".join(i.value for i in at.info)
    assert data.NEXT_STEPS[SOURCE[page]] in infos  # says which command to run next
    assert "`churn " in infos
    assert not list(Path(empty["root"]).iterdir())  # nothing was created


@pytest.mark.parametrize("page", PAGES)
def test_blank_store_shows_next_steps(page, blank, use_env) -> None:
    use_env(blank["env"])
    at = run_page(page)
    infos = " ".join(i.value for i in at.info)  # an explanation instead of empty charts
    assert data.NEXT_STEPS[SOURCE[page]] in infos and "`churn " in infos
