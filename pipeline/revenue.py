"""Revenue impact of churn and of a retention campaign that acts on churn scores (pure).

Definitions (all money in the currency of ``monthly_revenue``):

* revenue at risk (per month) = Σ p(churn) × monthly revenue;
* a campaign contacts the top ``top_share`` of users by risk score; of the contacted users
  who would have churned, a share ``effectiveness`` is retained;
* churners prevented = effectiveness × churners among the contacted;
* revenue saved = effectiveness × Σ_contacted churn × monthly revenue × ``months``;
* cost = contacted × ``cost_per_contact`` + prevented × ``incentive_cost`` (the incentive,
  e.g. a discounted month, is paid to the users it keeps);
* net value = revenue saved - cost; ROI = net value / cost.

``outcome`` is whatever stands for "would churn": the realised labels of a past period
(the test window), or the predicted probabilities themselves (expected values, for a
period whose outcome is not known yet). Ties in the score at the contact cut-off are
shared fractionally, as in :mod:`pipeline.evaluation`.

Monthly revenue per user: the plan price the user last paid (the feature set's price
feature); where a frame has none, a flat ``default_monthly_revenue``.

>>> r = simulate_campaign([0.9, 0.1], [1, 0], [10.0, 10.0], Campaign(top_share=0.5, months=1,
...                       cost_per_contact=1, incentive_cost=0, effectiveness=0.5))
>>> r.revenue_saved, r.cost, r.net_value
(5.0, 1.0, 4.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from pipeline.evaluation import top_share_weights


@dataclass(frozen=True)
class Campaign:
    top_share: float = 0.10
    effectiveness: float = 0.30
    cost_per_contact: float = 2.0
    incentive_cost: float = 10.0
    months: float = 6.0

    def __post_init__(self) -> None:
        checks = {
            "top_share": 0 < self.top_share <= 1,
            "effectiveness": 0 <= self.effectiveness <= 1,
            "cost_per_contact": self.cost_per_contact >= 0,
            "incentive_cost": self.incentive_cost >= 0,
            "months": self.months > 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"invalid campaign {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)}: top_share in (0, 1], "
                "effectiveness in [0, 1], costs >= 0, months > 0"
            )


@dataclass(frozen=True)
class CampaignResult:
    users: int
    top_share: float
    contacted: float
    baseline_churners: float
    revenue_at_risk_monthly: float
    revenue_lost: float
    churners_contacted: float
    churners_prevented: float
    revenue_saved: float
    cost: float
    net_value: float
    roi: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def _arrays(*cols: Sequence[float]) -> list[np.ndarray]:
    arrs = [np.asarray(c, dtype=np.float64) for c in cols]
    n = {len(a) for a in arrs}
    if len(n) != 1 or any(a.ndim != 1 for a in arrs):
        raise ValueError(f"scores, outcome and monthly_revenue must be 1-d of one length, got {[a.shape for a in arrs]}")
    if any(np.isnan(a).any() for a in arrs):
        raise ValueError("scores, outcome and monthly_revenue must not contain NaN")
    return arrs


def revenue_at_risk(p: Sequence[float], monthly_revenue: Sequence[float]) -> float:
    """Σ p(churn) × monthly revenue: the expected monthly revenue that walks out."""
    p_arr, rev = _arrays(p, monthly_revenue)
    return float(p_arr @ rev)


def simulate_campaign(
    scores: Sequence[float], outcome: Sequence[float], monthly_revenue: Sequence[float], campaign: Campaign
) -> CampaignResult:
    s, o, rev = _arrays(scores, outcome, monthly_revenue)
    w = top_share_weights(s, campaign.top_share) if len(s) else s
    churners_contacted = float(w @ o)
    prevented = campaign.effectiveness * churners_contacted
    saved = campaign.effectiveness * float((w * o) @ rev) * campaign.months
    contacted = float(w.sum())
    cost = contacted * campaign.cost_per_contact + prevented * campaign.incentive_cost
    net = saved - cost
    return CampaignResult(
        users=len(s), top_share=campaign.top_share, contacted=contacted, baseline_churners=float(o.sum()),
        revenue_at_risk_monthly=float(o @ rev), revenue_lost=float(o @ rev) * campaign.months,
        churners_contacted=churners_contacted, churners_prevented=prevented, revenue_saved=saved,
        cost=cost, net_value=net, roi=net / cost if cost > 0 else float("nan"),
    )


def sweep(
    scores: Sequence[float], outcome: Sequence[float], monthly_revenue: Sequence[float], campaign: Campaign,
    shares: Sequence[float] | None = None,
) -> pd.DataFrame:
    """One row per contact share (default 1 %, 2 %, ..., 100 %), same campaign otherwise."""
    grid = np.round(np.arange(1, 101) / 100, 2) if shares is None else shares
    rows = [simulate_campaign(scores, outcome, monthly_revenue, _with(campaign, float(k))).as_dict() for k in grid]
    return pd.DataFrame(rows)


def best_share(table: pd.DataFrame) -> pd.Series:
    """The sweep row with the highest net value (the smallest share among equals)."""
    return table.loc[table["net_value"].idxmax()]


def business_summary(
    scores: Sequence[float], outcome: Sequence[float], monthly_revenue: Sequence[float], campaign: Campaign,
) -> dict[str, float]:
    """What a business reader asks: churners, revenue lost, prevented, saved, best K."""
    at = simulate_campaign(scores, outcome, monthly_revenue, campaign)
    best = best_share(sweep(scores, outcome, monthly_revenue, campaign))
    return {
        "users": float(at.users),
        "baseline_churners": at.baseline_churners,
        "revenue_at_risk_monthly": at.revenue_at_risk_monthly,
        "revenue_lost": at.revenue_lost,
        "contacted": at.contacted,
        "churners_prevented": at.churners_prevented,
        "revenue_saved": at.revenue_saved,
        "campaign_cost": at.cost,
        "net_value": at.net_value,
        "roi": at.roi,
        "best_top_share": float(best["top_share"]),
        "best_net_value": float(best["net_value"]),
        "best_roi": float(best["roi"]),
    }


def _with(c: Campaign, share: float) -> Campaign:
    return Campaign(share, c.effectiveness, c.cost_per_contact, c.incentive_cost, c.months)
