"""Generate a SaaS product event log (seeded, synthetic): feature use, billing, cancellations.

One row per event: ``account_id``, ``ts`` (epoch seconds, UTC), ``event``, ``value``
(calls for ``api_call``, the invoice amount for ``invoice_paid``, else empty), ``plan``
(on ``signed_up`` and ``invoice_paid`` rows). Eight feature-use actions plus ``signed_up``, ``invoice_paid``
and ``subscription_cancelled``. Import it with ``docs/examples/saas_mapping.yaml``.

How churn depends on the actions (the documented mechanisms; each account has a daily
hazard of deciding to leave, and a leaving account cancels 7-28 days later):

* ``error_shown`` **raises** churn: every error in the last 7 days adds 0.35 to the
  log-odds (an account's error propensity drifts, so some accounts get buggier).
* ``seat_removed`` **raises** churn (+0.8 per removal in the last 30 days): contraction.
* ``integration_sync`` **lowers** churn (-0.45 x ln(1 + syncs in 30 days)): integrated
  accounts are sticky.
* ``invite_sent`` **lowers** churn (-0.6 x ln(1 + invites in 30 days)): collaboration.
* ``report_export`` **interacts with tenure**: an account younger than 60 days that has
  never exported a report is not activated (+1.8); after 60 days exports change nothing.
* ``dashboard_view`` follows the account's engagement (low engagement: +0.5 x -ln e).
* While leaving, an account views dashboards and exports less, visits the billing page
  (``billing_page_view``) and removes seats: the signals a model can see before the cancel.
* ``api_call`` (value = calls) is noise with respect to churn.

    python docs/examples/make_saas_sample.py data/examples/saas_events.csv.gz
    python docs/examples/make_saas_sample.py out.csv.gz --accounts 600 --days 120 --seed 3
"""

from __future__ import annotations

import argparse
import gzip
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

START = datetime(2026, 1, 5, tzinfo=UTC)
ACTIONS = ("dashboard_view", "report_export", "integration_sync", "invite_sent", "api_call", "error_shown",
           "seat_removed", "billing_page_view")
PLANS = {"starter": 29.0, "team": 99.0, "business": 299.0}


def generate(accounts: int = 3000, days: int = 150, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = accounts
    t0 = int(START.timestamp())
    old = rng.random(n) < 0.5
    join = np.where(old, -rng.integers(20, 700, n), rng.integers(0, max(days - 40, 1), n))
    plan = rng.choice(list(PLANS), n, p=[0.5, 0.35, 0.15])
    eng = rng.lognormal(0.0, 0.5, n)
    integ = rng.random(n) < 0.4
    collab = rng.lognormal(-0.3, 0.6, n)
    bugs = rng.lognormal(-1.8, 0.7, n)
    exported = old & (rng.random(n) < 0.9)  # most old accounts activated long ago
    leaving_in = np.full(n, -1)  # days until the cancel; -1: not leaving
    gone = np.zeros(n, bool)
    ring = {a: np.zeros((n, 30), np.int32) for a in ("error_shown", "seat_removed", "integration_sync", "invite_sent")}
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # (account, ts, event code, value)
    names = [*ACTIONS, "signed_up", "invoice_paid", "subscription_cancelled"]
    code = {e: i for i, e in enumerate(names)}

    def emit(users: np.ndarray, day: int, event: str, value: np.ndarray | None = None) -> None:
        if len(users):
            ts = t0 + day * 86400 + rng.integers(7 * 3600, 22 * 3600, len(users))
            out.append((users, ts, np.full(len(users), code[event]), np.full(len(users), np.nan)
                        if value is None else value.astype(float)))

    emit(np.flatnonzero(old), 0, "signed_up")  # fixed below: old signups carry their past time
    for day in range(days):
        emit(np.flatnonzero(join == day), day, "signed_up")
        active = (join <= day) & ~gone
        leaving = active & (leaving_in >= 0)
        k = day % 30
        for r in ring.values():
            r[:, k] = 0
        bugs *= np.exp(rng.normal(0, 0.04, n))
        rate = {
            "dashboard_view": 0.9 * eng * np.where(leaving, 0.35, 1.0),
            "report_export": 0.12 * eng * np.where(leaving, 0.3, 1.0),
            "integration_sync": np.where(integ, 0.6, 0.02) * np.where(leaving, 0.5, 1.0),
            "invite_sent": 0.04 * collab * np.where(leaving, 0.0, 1.0),
            "api_call": np.where(plan == "business", 0.5, 0.15),
            "error_shown": 0.25 * bugs,
            "seat_removed": np.where(leaving, 0.06, 0.004) * (plan != "starter"),
            "billing_page_view": np.where(leaving, 0.2, 0.01),
        }
        for a in ACTIONS:
            c = rng.poisson(rate[a] * active)
            users = np.repeat(np.arange(n), c)
            emit(users, day, a, rng.poisson(40, len(users)) + 1 if a == "api_call" else None)
            if a == "report_export":
                exported[users] = True
            if a in ring:
                ring[a][:, k] = c
        billed = active & ((day - join) % 30 == 0)
        emit(np.flatnonzero(billed), day, "invoice_paid", np.array([PLANS[p] for p in plan[billed]]))
        # the decision to leave, from the documented mechanisms
        tenure = day - join
        z = (-6.3 + 0.35 * np.minimum(ring["error_shown"].sum(1), 10) + 0.8 * ring["seat_removed"].sum(1)
             - 0.45 * np.log1p(ring["integration_sync"].sum(1)) - 0.6 * np.log1p(ring["invite_sent"].sum(1))
             + 1.8 * ((tenure < 60) & ~exported) - 0.5 * np.log(eng))
        decide = active & (leaving_in < 0) & (rng.random(n) < 1 / (1 + np.exp(-z)))
        leaving_in[decide] = rng.integers(7, 29, int(decide.sum()))
        cancel = active & (leaving_in == 0)
        emit(np.flatnonzero(cancel), day, "subscription_cancelled")
        gone |= cancel
        leaving_in[leaving & ~cancel] -= 1
    acc, ts, ev, val = (np.concatenate(x) for x in zip(*out, strict=True))
    signup = ev == code["signed_up"]
    ts = np.where(signup & (join[acc] < 0), t0 + join[acc] * 86400 + 9 * 3600, ts)
    df = pd.DataFrame({"account_id": np.char.add("acct-", acc.astype(str)), "ts": ts,
                       "event": np.asarray(names, dtype=object)[ev], "value": val,
                       "plan": np.where(signup | (ev == code["invoice_paid"]), plan[acc], "")})
    return df.sort_values(["ts", "account_id"], kind="stable").reset_index(drop=True)


def write(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = df.to_csv(index=False, float_format="%.10g").encode()
    with gzip.GzipFile(path, "wb", mtime=0) as f:  # mtime=0: same seed, same bytes
        f.write(data)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--accounts", type=int, default=3000)
    p.add_argument("--days", type=int, default=150)
    p.add_argument("--seed", type=int, default=11)
    a = p.parse_args()
    df = generate(a.accounts, a.days, a.seed)
    write(df, a.out)
    print(f"wrote {a.out}: {len(df):,} rows, {df.account_id.nunique():,} accounts, "
          f"{a.out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
