"""Generate an e-commerce event log (seeded, synthetic): views, carts, purchases, returns.

One row per event: ``customer``, ``time`` (ISO 8601, UTC), ``action`` (``view``,
``add_to_cart``, ``purchase``, ``return``), ``amount`` (order / refund value on purchase
and return rows). There is no sign-up and no cancel: a customer churns by going quiet,
so ``docs/examples/shop_mapping.yaml`` synthesizes signups at the first row and uses
inactivity churn (30 days without any event). Import it with that mapping.

How churn depends on the actions (each customer has a daily hazard of lapsing; a lapsing
customer browses less and less for 5-20 days, then never comes back):

* ``purchase`` **lowers** churn: -0.6 x ln(1 + purchases in the last 30 days).
* ``return`` **raises** churn, and **interacts with tenure**: a return in a customer's
  first 30 days adds 1.5 to the log-odds per return (a bad first order loses the
  customer); later returns add only 0.15 each (returns are routine for loyal buyers).
* ``add_to_cart`` without a purchase (carts abandoned in the last 14 days, up to 5)
  **raises** churn: +0.35 each.
* ``view`` follows the customer's engagement (low engagement: +0.6 x -ln e).

    python docs/examples/make_shop_sample.py data/examples/shop_events.csv.gz
    python docs/examples/make_shop_sample.py out.csv.gz --customers 600 --days 120 --seed 3
"""

from __future__ import annotations

import argparse
import gzip
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

START = datetime(2026, 1, 5, tzinfo=UTC)
ACTIONS = ("view", "add_to_cart", "purchase", "return")


def generate(customers: int = 3000, days: int = 150, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = customers
    t0 = int(START.timestamp())
    old = rng.random(n) < 0.5
    join = np.where(old, -rng.integers(60, 900, n), rng.integers(0, max(days - 40, 1), n))
    eng = rng.lognormal(0.0, 0.5, n)
    returner = rng.lognormal(-2.2, 0.6, n)  # probability scale of returning an order
    lapse_in = np.full(n, -1)  # days of fading left; -1 not lapsing
    fade = np.ones(n)
    gone = np.zeros(n, bool)
    carts = np.zeros((n, 14), np.int32)
    buys = np.zeros((n, 30), np.int32)
    rets_new = np.zeros((n, 30), np.int32)
    rets_old = np.zeros((n, 30), np.int32)
    pending: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}  # day -> returns due (customers, amounts)
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    code = {a: i for i, a in enumerate(ACTIONS)}

    def emit(users: np.ndarray, day: int, action: str, amount: np.ndarray | None = None) -> None:
        if len(users):
            ts = t0 + day * 86400 + rng.integers(6 * 3600, 23 * 3600, len(users))
            out.append((users, ts, np.full(len(users), code[action]),
                        np.full(len(users), np.nan) if amount is None else amount))

    for day in range(days):
        active = (join <= day) & ~gone
        lapsing = active & (lapse_in >= 0)
        fade = np.where(lapsing, fade * 0.8, 1.0)
        c14, c30 = day % 14, day % 30
        carts[:, c14] = 0
        buys[:, c30] = 0
        rets_new[:, c30] = 0
        rets_old[:, c30] = 0
        e = eng * fade * active
        views = rng.poisson(0.7 * e)
        emit(np.repeat(np.arange(n), views), day, "view")
        cart = rng.poisson(0.12 * e)
        emit(np.repeat(np.arange(n), cart), day, "add_to_cart")
        buy = rng.binomial(cart, 0.45)
        users = np.repeat(np.arange(n), buy)
        amount = np.round(rng.lognormal(3.8, 0.6, len(users)), 2)
        emit(users, day, "purchase", amount)
        carts[:, c14] = cart - buy
        buys[:, c30] = buy
        back = rng.random(len(users)) < np.minimum(returner[users], 0.9)
        for u, a, lag in zip(users[back].tolist(), amount[back].tolist(), rng.integers(3, 21, int(back.sum())).tolist(),
                             strict=True):
            pending.setdefault(day + lag, []).append((np.array([u]), np.array([a])))
        due = pending.pop(day, [])
        if due:
            ru = np.concatenate([u for u, _ in due])
            ra = np.concatenate([a for _, a in due])
            keep = active[ru]
            ru, ra = ru[keep], ra[keep]
            emit(ru, day, "return", ra)
            new = (day - join[ru]) < 30
            np.add.at(rets_new[:, c30], ru[new], 1)
            np.add.at(rets_old[:, c30], ru[~new], 1)
        z = (-6.0 - 0.6 * np.log1p(buys.sum(1)) + 1.5 * rets_new.sum(1) + 0.15 * rets_old.sum(1)
             + 0.35 * np.minimum(carts.sum(1), 5) - 0.6 * np.log(eng))
        decide = active & (lapse_in < 0) & (rng.random(n) < 1 / (1 + np.exp(-z)))
        lapse_in[decide] = rng.integers(5, 21, int(decide.sum()))
        gone |= active & (lapse_in == 0)
        lapse_in[lapsing & (lapse_in > 0)] -= 1
    cust, ts, act, amt = (np.concatenate(x) for x in zip(*out, strict=True))
    df = pd.DataFrame({"customer": np.char.add("c", cust.astype(str)),
                       "time": pd.to_datetime(ts, unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "action": np.asarray(ACTIONS, dtype=object)[act], "amount": amt})
    return df.iloc[np.argsort(ts, kind="stable")].reset_index(drop=True)


def write(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = df.to_csv(index=False, float_format="%.2f").encode()
    with gzip.GzipFile(path, "wb", mtime=0) as f:  # mtime=0: same seed, same bytes
        f.write(data)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--customers", type=int, default=3000)
    p.add_argument("--days", type=int, default=150)
    p.add_argument("--seed", type=int, default=5)
    a = p.parse_args()
    df = generate(a.customers, a.days, a.seed)
    write(df, a.out)
    print(f"wrote {a.out}: {len(df):,} rows, {df.customer.nunique():,} customers, "
          f"{a.out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
