""""High risk" relative to the base rate, end to end: the stream stores reasons for the users
the rule marks at a 1-2 % base rate (where a fixed 0.5 marks nobody), refuses a champion
the rule cannot be resolved for, and the closing report and the dashboard resolve the
same threshold."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.errors import ModelMismatchError
from pipeline.features.registry import FEATURE_NAMES, FEATURE_SET_VERSION
from pipeline.features.state import FeatureFrame
from pipeline.highrisk import HighRiskRule
from pipeline.store import Store
from pipeline.stream.champion import StaticChampion
from pipeline.stream.config import StreamConfig
from pipeline.stream.model import export_model, load_export, publish, read_pointer
from pipeline.stream.report import report_threshold, stream_report
from pipeline.stream.scorer import Scorer
from pipeline.stream.supervisor import Supervisor
from pipeline.stream.worker import Worker
from pipeline.testing.stream import tiny_model

from .helpers import scores

BASE_RATE = 0.015  # the champion's training churn rate
T = datetime(2026, 3, 1, tzinfo=UTC)


def _low_risk_champion(paths, version: str = "7", base_rate: float | None = BASE_RATE):
    """A champion whose risks on the test history sit around 1 %, all far below 0.5."""
    model = tiny_model(boost=-6.5)
    del model.base_rate  # only what is passed here is recorded
    ref = export_model(model, version, FEATURE_SET_VERSION, paths.models, base_rate=base_rate,
                       base_rate_source="training base rate" if base_rate else "")  # fmt: skip
    publish(paths.champion, ref)
    return ref


def test_default_rule_stores_reasons_at_a_low_base_rate_where_half_marks_nobody(log, store, paths, cfg) -> None:
    _low_risk_champion(paths)
    assert cfg.high_risk is None and cfg.alert_threshold is None  # the default rule
    summary = Worker("w0", log, store, paths, cfg, partitions=[0, 1]).run(until_caught_up=True)
    df = scores(store)
    active = df[df["active"]]
    assert (active["risk"] < 0.5).all()  # the old fixed 0.5 would mark nobody, store no reasons
    assert active["risk"].mean() < 0.05
    hot = active["risk"] >= 3 * BASE_RATE
    assert 0 < hot.sum() < 0.1 * len(active)  # a few per cent of users
    assert active.loc[hot, "reasons"].map(len).eq(3).all()
    assert active.loc[~hot, "reasons"].isna().all() and df.loc[~df["active"], "reasons"].isna().all()
    assert summary["reasons_rows"] >= hot.sum()
    assert "risk >= 0.045 (3x the champion's training base rate 1.50%" in summary["high_risk"]

    # the closing report and the dashboard resolve the same threshold and count the same users
    from dashboard import data

    report = stream_report(store, log, cfg.group, {}, seconds=1.0, stopped="caught up", data_dir=paths.data_dir)
    src = data.Sources(store_url=store.url, mlflow_uri="sqlite:///unused.db", data_dir=paths.data_dir,
                       stream_group=cfg.group)  # fmt: skip
    board = data.high_risk_threshold(store, src)
    assert report.high_risk == board and board.threshold == pytest.approx(0.045)
    assert report.high_risk_users == store.score_summary(high_risk=board.cut).high_risk_users == hot.sum()
    line = report.lines()[2]
    assert line == report.high_risk_line() and f"{hot.sum()} of {len(active)} active users" in line
    assert board.text() in line and data.high_risk_label(board) == "High risk (≥ 0.045)"
    assert report.as_dict()["high_risk"]["threshold"] == board.threshold


def test_top_percent_in_the_report_and_dashboard_is_one_threshold(log, store, paths, cfg) -> None:
    _low_risk_champion(paths, base_rate=None)  # a top share needs no base rate
    cfg = cfg.replace(high_risk="top5%")
    Worker("w0", log, store, paths, cfg, partitions=[0, 1]).run(until_caught_up=True)
    from dashboard import data

    src = data.Sources(store_url=store.url, mlflow_uri="sqlite:///unused.db", data_dir=paths.data_dir,
                       stream_group=cfg.group, high_risk="top_percent:5")  # fmt: skip
    board = data.high_risk_threshold(store, src)
    report = stream_report(store, log, cfg.group, {}, seconds=1.0, stopped="caught up",
                           high_risk=cfg.high_risk_rule, data_dir=paths.data_dir)  # fmt: skip
    active = scores(store).query("active")
    assert report.high_risk == board and board.users == len(active)
    assert board.threshold == np.sort(active["risk"].to_numpy())[-int(np.ceil(0.05 * len(active)))]
    assert report.high_risk_users == (active["risk"] >= board.threshold).sum()
    assert "the top 5% of" in report.high_risk_line()


def test_scorer_top_percent_marks_the_top_share_of_the_recent_active_users(paths) -> None:
    model = load_export(_low_risk_champion(paths))
    rng = np.random.default_rng(0)
    values = rng.gamma(1.5, 3.0, (400, len(FEATURE_NAMES)))
    active = rng.random(400) < 0.75
    chunk = Scorer("top_percent:10").score(0, FeatureFrame(T, [f"u{i}" for i in range(400)], values, active), model)
    marked = np.array([r is not None for r in chunk.reasons])
    assert marked.sum() == int(np.ceil(0.1 * active.sum())) and not marked[~active].any()
    assert chunk.risk[marked].min() >= chunk.risk[active & ~marked].max()


def test_a_trickle_of_small_batches_is_judged_against_the_recent_window(paths) -> None:
    """Top 10 % of 3 users would always mark one in three; the window keeps it at ~10 %."""
    model = load_export(_low_risk_champion(paths))
    rng = np.random.default_rng(1)
    scorer = Scorer(HighRiskRule.top_percent(10))
    first = rng.gamma(1.5, 3.0, (2_000, len(FEATURE_NAMES)))
    scorer.score(0, FeatureFrame(T, [f"a{i}" for i in range(2_000)], first, np.ones(2_000, bool)), model)
    window_cut = scorer.resolved.threshold
    marked = total = 0
    for b in range(100):
        values = rng.gamma(1.5, 3.0, (3, len(FEATURE_NAMES)))
        chunk = scorer.score(0, FeatureFrame(T, [f"b{b}-{i}" for i in range(3)], values, np.ones(3, bool)), model)
        marked += sum(r is not None for r in chunk.reasons)
        total += 3
    assert 0.03 < marked / total < 0.2  # not 1/3
    assert scorer.resolved.users == 2_300 and abs(scorer.resolved.threshold - window_cut) < 0.05
    from pipeline.stream.scorer import TOP_WINDOW

    big = rng.gamma(1.5, 3.0, (TOP_WINDOW + 500, len(FEATURE_NAMES)))  # more than the window: the newest kept
    chunk = scorer.score(0, FeatureFrame(T, [f"c{i}" for i in range(len(big))], big, np.ones(len(big), bool)), model)
    assert scorer.resolved.users == TOP_WINDOW
    assert scorer.resolved.threshold == np.sort(chunk.risk[-TOP_WINDOW:])[-TOP_WINDOW // 10]


def test_a_champion_without_a_base_rate_is_refused_with_the_remedy(log, store, paths, cfg) -> None:
    _low_risk_champion(paths, base_rate=None)
    with pytest.raises(ModelMismatchError) as err:
        Worker("w0", log, store, paths, cfg, partitions=[0, 1]).run(until_caught_up=True)
    msg = str(err.value)
    assert "multiple_of_base_rate:3" in msg and "churn v7 records none" in msg and "--high-risk top_percent:5" in msg
    assert scores(store).empty  # nothing scored under a rule that cannot be resolved


def test_the_supervisor_refuses_it_at_start_and_keeps_the_old_one_later(data_dir, tmp_path, caplog) -> None:
    bare = tiny_model()
    del bare.base_rate
    champion = StaticChampion()
    champion.set(bare, "9")
    sup = Supervisor(data_dir, "events", f"sqlite:///{tmp_path / 'churn.db'}", champion,
                     StreamConfig(group="test", model_poll_s=0.05))  # fmt: skip
    with pytest.raises(ModelMismatchError, match="records none"):
        sup.run(max_seconds=5)
    assert read_pointer(sup.paths.champion) is None  # the workers never saw it

    champion.set(tiny_model(), "1", base_rate=BASE_RATE)
    sup = Supervisor(data_dir, "events", f"sqlite:///{tmp_path / 'churn2.db'}", champion,
                     StreamConfig(group="test2", model_poll_s=0.05))  # fmt: skip
    assert sup.wait_for_champion(lambda: False)
    assert read_pointer(sup.paths.champion).base_rate == BASE_RATE
    champion.set(bare, "2")
    sup.follow_champion()
    assert read_pointer(sup.paths.champion).version == "1" and "keep scoring with v1" in caplog.text


def test_config_takes_the_rule_from_settings_and_refuses_two_answers() -> None:
    from pipeline.config import Settings
    from pipeline.errors import ConfigError

    assert StreamConfig().high_risk_rule == HighRiskRule.multiple_of_base_rate(3)
    assert StreamConfig(alert_threshold=0.3).high_risk_rule == HighRiskRule.absolute(0.3)
    env = Settings(stream_high_risk="top5%")
    assert StreamConfig.from_settings(env).high_risk_rule == HighRiskRule.top_percent(5)
    assert StreamConfig.from_settings(env, alert_threshold=0.2).high_risk_rule == HighRiskRule.absolute(0.2)
    with pytest.raises(ConfigError, match="give one"):
        StreamConfig(high_risk="3x", alert_threshold=0.2)
    with pytest.raises(ConfigError, match="high_risk: high-risk rule 'most' is not understood"):
        StreamConfig(high_risk="most")


def test_report_without_a_champion_export_says_why_instead_of_failing(store, paths) -> None:
    hr = report_threshold(store, "nobody", None, paths.data_dir)
    assert hr.threshold is None and "has no champion exported yet" in hr.text()


def test_churn_stream_high_risk_option_reaches_the_flow_and_the_report(monkeypatch, data_dir, log) -> None:
    import flows.stream
    from churn.cli.app import app

    seen = {}

    def fake_stream(**options):
        seen.update(options)
        with Store(f"sqlite:///{data_dir / 'churn.db'}") as store:
            store.upsert_scores([{"user_id": f"u{i:02d}", "risk": i / 100, "model_version": "4", "features_time": T,
                                  "plan": "basic", "monthly_revenue": 10.0} for i in range(20)])  # fmt: skip
        return {"group": "churn-stream", "topic": "events", "stopped": "caught up", "model_version": "4",
                "workers": 1, "restarts": 0, "health": "Healthy"}  # fmt: skip

    monkeypatch.setattr(flows.stream, "stream", fake_stream)
    runner = CliRunner()
    result = runner.invoke(app, ["--data-dir", str(data_dir), "stream", "--high-risk", "top10%"])
    assert result.exit_code == 0, result.output
    assert seen["high_risk"] == "top10%"
    assert "high risk = risk >= 0.18 (the top 10% of 20 active users; rule top_percent:10): 2 of 20" in result.output
    bad = runner.invoke(app, ["--data-dir", str(data_dir), "stream", "--high-risk", "half"])
    assert bad.exit_code != 0 and "'half' is not understood" in bad.output


def test_the_dashboard_names_a_bad_rule_instead_of_failing(store, paths) -> None:
    from dashboard import data

    src = data.Sources(store_url=store.url, mlflow_uri="sqlite:///unused.db", data_dir=paths.data_dir,
                       high_risk="most of them")  # fmt: skip
    hr = data.high_risk_threshold(store, src)
    assert hr.threshold is None and "'most of them' is not understood" in hr.text()
    assert data.high_risk_label(hr) == "High risk"
