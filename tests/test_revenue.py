"""Revenue maths against numbers computed by hand."""

from __future__ import annotations

import math

import pytest

from pipeline.revenue import (
    Campaign,
    best_share,
    business_summary,
    revenue_at_risk,
    simulate_campaign,
    sweep,
)

# Five users; scores rank them 0..4; users 0, 1 and 3 churn; monthly revenue by user.
SCORES = [0.9, 0.8, 0.5, 0.3, 0.1]
CHURN = [1, 1, 0, 1, 0]
REVENUE = [10.0, 20.0, 10.0, 15.0, 5.0]


def test_revenue_at_risk_is_probability_weighted_revenue() -> None:
    # 0.9*10 + 0.8*20 + 0.5*10 + 0.3*15 + 0.1*5 = 9 + 16 + 5 + 4.5 + 0.5
    assert revenue_at_risk(SCORES, REVENUE) == pytest.approx(35.0)


def test_campaign_on_top_40_percent_by_hand() -> None:
    c = Campaign(top_share=0.4, effectiveness=0.3, cost_per_contact=2.0, incentive_cost=10.0, months=6)
    r = simulate_campaign(SCORES, CHURN, REVENUE, c)
    # contact users 0 and 1: both churners; 0.3 of them are kept
    assert r.contacted == 2
    assert r.baseline_churners == 3
    assert r.revenue_at_risk_monthly == pytest.approx(45.0)  # 10 + 20 + 15
    assert r.revenue_lost == pytest.approx(270.0)  # 45 * 6 months
    assert r.churners_contacted == 2
    assert r.churners_prevented == pytest.approx(0.6)
    assert r.revenue_saved == pytest.approx(54.0)  # 0.3 * (10 + 20) * 6
    assert r.cost == pytest.approx(10.0)  # 2 contacts * 2 + 0.6 kept * 10
    assert r.net_value == pytest.approx(44.0)
    assert r.roi == pytest.approx(4.4)


def test_ties_at_the_cut_off_are_shared() -> None:
    # two users tied at the cut-off, one slot left: each counts half
    r = simulate_campaign([0.9, 0.5, 0.5], [1, 1, 0], [10.0, 10.0, 10.0],
                          Campaign(top_share=2 / 3, effectiveness=1.0, cost_per_contact=0, incentive_cost=0, months=1))
    assert r.contacted == pytest.approx(2.0)
    assert r.churners_contacted == pytest.approx(1.5)
    assert r.revenue_saved == pytest.approx(15.0)


def test_probabilities_as_outcome_give_expected_values() -> None:
    c = Campaign(top_share=0.2, effectiveness=0.5, cost_per_contact=1.0, incentive_cost=0.0, months=1)
    r = simulate_campaign(SCORES, SCORES, REVENUE, c)
    assert r.baseline_churners == pytest.approx(2.6)  # sum of probabilities
    assert r.revenue_saved == pytest.approx(0.5 * 0.9 * 10.0)


def test_sweep_finds_the_best_share() -> None:
    c = Campaign(effectiveness=0.3, cost_per_contact=2.0, incentive_cost=10.0, months=6)
    table = sweep(SCORES, CHURN, REVENUE, c, shares=[0.2, 0.4, 0.6, 0.8, 1.0])
    # net value: 0.2 -> 18 - (2 + 3) = 13; 0.4 -> 44; 0.6 -> 54 - (6 + 6) = 42;
    # 0.8 -> 81 - (8 + 9) = 64; 1.0 -> 81 - (10 + 9) = 62
    assert table["net_value"].round(6).tolist() == [13.0, 44.0, 42.0, 64.0, 62.0]
    assert best_share(table)["top_share"] == 0.8


def test_business_summary_reports_what_a_reader_expects() -> None:
    s = business_summary(SCORES, CHURN, REVENUE, Campaign(top_share=0.4, months=6))
    assert s["baseline_churners"] == 3
    assert s["revenue_lost"] == pytest.approx(270.0)
    assert s["churners_prevented"] == pytest.approx(0.6)
    assert s["revenue_saved"] == pytest.approx(54.0)
    assert 0 < s["best_top_share"] <= 1 and not math.isnan(s["best_net_value"])


@pytest.mark.parametrize("bad", [{"top_share": 0}, {"effectiveness": 1.5}, {"cost_per_contact": -1}, {"months": 0}])
def test_invalid_campaign_names_the_value(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        Campaign(**bad)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="one length"):
        simulate_campaign([0.1, 0.2], [1], [1.0, 1.0], Campaign())
