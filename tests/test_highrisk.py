"""The high-risk rule: each kind's threshold, the text forms, validation that says how to fix."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.errors import ConfigError, ModelMismatchError
from pipeline.highrisk import (
    HighRiskRule,
    ResolvedThreshold,
    base_rate_from_tags,
    resolve_in_store,
    top_rank,
)


def test_the_default_is_three_times_the_base_rate_and_works_at_a_one_percent_base_rate() -> None:
    rule = HighRiskRule()
    assert rule == HighRiskRule.multiple_of_base_rate(3) == HighRiskRule.parse("multiple_of_base_rate:3")
    hr = rule.resolve(base_rate=0.012, base_rate_source="training base rate")
    assert hr.threshold == pytest.approx(0.036)
    risk = np.array([0.01, 0.03, 0.037, 0.2, 0.45])  # a calibrated model at 1.2 %: nobody >= 0.5
    assert hr.marks(risk).tolist() == [False, False, True, True, True]
    assert not HighRiskRule.absolute(0.5).resolve().marks(risk).any()
    assert "0.036" in hr.text() and "3x the champion's training base rate 1.20%" in hr.text()


def test_a_multiple_never_asks_for_more_than_certainty() -> None:
    assert HighRiskRule.multiple_of_base_rate(4).resolve(base_rate=0.4).threshold == 1.0


def test_top_percent_marks_the_riskiest_share_of_active_users() -> None:
    rng = np.random.default_rng(3)
    risk = rng.beta(0.5, 40.0, 1_000)  # ~1.2 % mean risk
    hr = HighRiskRule.top_percent(5).resolve(risks=risk)
    assert hr.marks(risk).sum() == 50 and hr.users == 1_000
    assert hr.threshold == np.sort(risk)[-50]
    # ceil: 2.5 % of 10 users is one user, never zero; ties at the threshold are all marked
    assert top_rank(2.5, 10) == 1 and top_rank(100, 7) == 7 and top_rank(10, 100) == 10
    tied = np.array([0.1, 0.2, 0.2, 0.2])
    assert HighRiskRule.top_percent(25).resolve(risks=tied).marks(tied).sum() == 3
    empty = HighRiskRule.top_percent(5).resolve(risks=np.zeros(0))
    assert empty.threshold is None and empty.cut == math.inf and "no active user scored yet" in empty.text()


def test_absolute_is_the_old_fixed_threshold() -> None:
    hr = HighRiskRule.parse("0.5").resolve()
    assert hr.rule == HighRiskRule.absolute(0.5) and hr.threshold == 0.5 and hr.text().startswith("high risk = risk >= 0.5")


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("3x", HighRiskRule.multiple_of_base_rate(3)),
        ("2.5x base rate", HighRiskRule.multiple_of_base_rate(2.5)),
        ("top5%", HighRiskRule.top_percent(5)),
        ("top 0.5 %", HighRiskRule.top_percent(0.5)),
        ("top_percent:10", HighRiskRule.top_percent(10)),
        ("absolute:0.2", HighRiskRule.absolute(0.2)),
        (" 0.35 ", HighRiskRule.absolute(0.35)),
    ],
)
def test_text_forms(text, rule) -> None:
    assert HighRiskRule.parse(text) == rule
    assert HighRiskRule.parse(rule.text) == rule  # the canonical form reads back


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: HighRiskRule.multiple_of_base_rate(0.5), "the multiple must be >= 1"),
        (lambda: HighRiskRule.multiple_of_base_rate(float("nan")), "e.g. multiple_of_base_rate:3"),
        (lambda: HighRiskRule.top_percent(0), "a percentage in (0, 100], e.g. top_percent:5"),
        (lambda: HighRiskRule.top_percent(150), "a percentage in (0, 100]"),
        (lambda: HighRiskRule.absolute(0.0), "a risk in (0, 1], e.g. absolute:0.2"),
        (lambda: HighRiskRule.absolute(2), "a risk in (0, 1]"),
        (lambda: HighRiskRule("percentile", 5), "use one of multiple_of_base_rate, top_percent, absolute"),
        (lambda: HighRiskRule.parse("very risky"), "is not understood: write one of multiple_of_base_rate:3"),
        (lambda: HighRiskRule.parse("quantile:0.9"), "kind 'quantile'"),
        (lambda: HighRiskRule.parse("top_percent:five"), "'five' is not a number"),
    ],
)
def test_validation_at_construction_says_how_to_fix(make, says) -> None:
    with pytest.raises(ConfigError) as err:
        make()
    assert says in str(err.value)


def test_a_multiple_without_a_base_rate_fails_with_the_remedy() -> None:
    rule = HighRiskRule()
    with pytest.raises(ModelMismatchError) as err:
        rule.resolve(version="7")
    msg = str(err.value)
    assert "champion churn v7 records none" in msg and "train.base_rate" in msg
    assert "`churn train`" in msg and "--high-risk top_percent:5" in msg
    with pytest.raises(ModelMismatchError):
        rule.check_base_rate("7", None)
    HighRiskRule.top_percent(5).check_base_rate("7", None)  # needs none
    with pytest.raises(ConfigError, match="not a churn rate"):
        rule.resolve(base_rate=1.5)


def test_base_rate_from_version_tags_prefers_the_training_rate() -> None:
    assert base_rate_from_tags({"train.base_rate": "0.0123", "test_base_rate": "0.02"}) == (0.0123, "training base rate")
    assert base_rate_from_tags({"test_base_rate": "0.020000"}) == (0.02, "test-window base rate")
    assert base_rate_from_tags({"train.base_rate": "", "test_base_rate": "nan"}) == (None, "")
    assert base_rate_from_tags({}) == (None, "")


def test_resolving_in_the_store_uses_the_active_users_current_scores(tmp_path) -> None:
    from datetime import UTC, datetime

    from pipeline.store import Store

    t = datetime(2026, 3, 1, tzinfo=UTC)
    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        empty = resolve_in_store(HighRiskRule.top_percent(10), store)
        assert empty.threshold is None and empty.users == 0
        rows = [{"user_id": f"u{i:02d}", "risk": i / 100, "model_version": "1", "features_time": t}
                for i in range(40)]  # fmt: skip
        rows.append({"user_id": "gone", "risk": 0.99, "active": False, "model_version": "1", "features_time": t})
        store.upsert_scores(rows)
        top = resolve_in_store(HighRiskRule.top_percent(10), store)
        assert top.threshold == 0.36 and top.users == 40  # 4 of 40 active; the cancelled user is not counted
        assert store.score_summary(high_risk=top.cut).high_risk_users == 4
        assert store.risk_at_rank(41) is None
        multiple = resolve_in_store(HighRiskRule(), store, base_rate=0.05, base_rate_source="training base rate")
        assert multiple.threshold == pytest.approx(0.15)
        missing = resolve_in_store(HighRiskRule(), store, version="3")
        assert missing.threshold is None and "records none" in missing.problem
        assert store.score_summary(high_risk=missing.cut).high_risk_users == 0
        assert isinstance(missing, ResolvedThreshold) and "not resolved" in missing.text()


def test_the_module_examples_run() -> None:
    import doctest

    import pipeline.highrisk

    result = doctest.testmod(pipeline.highrisk, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
