"""Every page under ``streamlit.testing.v1.AppTest``: populated store and fresh install."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
PAGES = ["overview", "stream", "risk", "revenue", "drift", "model"]


def run_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    if page != "overview":
        at.switch_page(f"pages/{page}.py")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def markdown_text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_overview_populated(populated, use_env) -> None:
    use_env(populated["env"])
    at = run_page("overview")
    kpis = metrics(at)
    assert kpis["Users scored"] == f"{populated['users']:,}"
    assert kpis["Champion model"] == "v2"
    assert kpis["Active consumers"] == "3"
    assert kpis["Total lag"] == f"{populated['total_lag']:,}"
    assert float(kpis["Events / s"].replace(",", "")) > 0
    assert float(kpis["Revenue at risk / month"].replace(",", "")) > 0
    banner = markdown_text(at)
    assert 'data-level="Warning"' in banner and "partition 3 WARN" in banner


def test_stream_populated(populated, use_env) -> None:
    use_env(populated["env"])
    at = run_page("stream")
    assert metrics(at)["Consumers"] == "3"
    charts = at.get("plotly_chart")
    assert len(charts) == 6
    assert all("no data yet" not in c.proto.spec for c in charts)
    assert "scale_up" in " ".join(c.proto.spec for c in charts)  # the decision is annotated
    tables = at.dataframe
    assert len(tables[0].value) == 4  # one row per partition


def test_risk_populated(populated, use_env) -> None:
    use_env(populated["env"])
    at = run_page("risk")
    assert metrics(at)["Users scored"] == f"{populated['users']:,}"
    top = at.dataframe[0].value
    assert len(top) == 50 and top["risk"].is_monotonic_decreasing
    assert top["reasons"].iloc[0]  # high-risk users carry their reasons
    assert at.text_input(key="lookup_user").value == populated["top_user"]
    assert len(at.get("plotly_chart")) == 2  # histogram + the user's history
    at.text_input(key="lookup_user").set_value("u00001").run()
    assert not at.exception
    assert "Risk history — u00001" in at.get("plotly_chart")[-1].proto.spec


def test_revenue_populated(populated, use_env) -> None:
    use_env(populated["env"])
    at = run_page("revenue")
    before = metrics(at)
    assert float(before["Net value"].replace(",", "")) != 0
    at.slider(key="k").set_value(40).run()
    assert not at.exception
    after = metrics(at)
    assert after["Users contacted"] == f"{0.4 * populated['users']:,.0f}"
    assert len(at.get("plotly_chart")) == 1


def test_drift_populated(populated, use_env) -> None:
    use_env(populated["env"])
    at = run_page("drift")
    heads = [s.value for s in at.subheader]
    assert "Latest Evidently report" in heads and "Retrain requests" in heads
    assert metrics(at)["Checks"] == "12" and metrics(at)["Level (last)"] == "Critical"
    charts = at.get("plotly_chart")
    assert len(charts) == 2 and all("no data yet" not in c.proto.spec for c in charts)
    assert (at.dataframe[0].value["model_version"] == "2").all()


def test_model_populated(populated, use_env) -> None:
    use_env(populated["env"])
    at = run_page("model")
    heads = [s.value for s in at.subheader]
    assert "Champion: v2" in heads and "Challenger: v3" in heads
    history = at.dataframe[0].value
    assert history["version"].tolist() == ["1", "2"]
    assert "drift retrain" in history["by"].tolist()
    assert [m.value for m in at.metric if m.label == "pr_auc"] == ["0.4970", "0.4890"]


@pytest.mark.parametrize("page", PAGES)
def test_fresh_install_shows_next_steps(page, empty, use_env) -> None:
    use_env(empty["env"])
    at = run_page(page)
    infos = " ".join(i.value for i in at.info)
    assert "run" in infos  # says what to run next
    assert not list(Path(empty["root"]).iterdir())  # nothing was created


@pytest.mark.parametrize("page", PAGES)
def test_blank_store_shows_next_steps(page, blank, use_env) -> None:
    use_env(blank["env"])
    at = run_page(page)
    assert at.info  # an explanation instead of empty charts
