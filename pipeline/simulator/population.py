"""The subscriber population: per-user attributes and state as growable numpy columns.

Observable attributes (plan, billing day, devices) show up in events; latent ones
(engagement mean, payment reliability, *satisfaction*) drive behaviour but are never
emitted, so a model has to infer them from what users do.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

PLAN_PRICES = np.array([7.99, 13.99, 19.99])  # basic, standard, premium (USD / month)
PLAN_MIX = np.array([0.42, 0.40, 0.18])


@dataclass
class Population:
    signup_s: np.ndarray  # int64 epoch seconds of signup
    plan: np.ndarray  # int8 index into PLANS
    bill_dom: np.ndarray  # int8 day of month billed (1..28)
    primary_device: np.ndarray  # int8 index into DEVICES
    mu: np.ndarray  # float64 long-run log engagement (latent)
    eng: np.ndarray  # float64 current log engagement (latent)
    p_fail: np.ndarray  # float64 card failure probability (latent)
    satisfaction: np.ndarray  # float64 hidden: never in any event
    active: np.ndarray  # bool: subscribed now
    cancel_day: np.ndarray  # int32 simulated day of cancel, -1 if none
    fail_recent: np.ndarray  # float64 decayed count of failed payments
    tick_recent: np.ndarray  # float64 decayed count of tickets
    dunning: np.ndarray  # int8: 0 none, k = k-th retry pending
    next_retry: np.ndarray  # int32 day of next retry
    declining: np.ndarray  # bool: in a gradual fade-out
    decline_rate: np.ndarray  # float64 per-day fall of log engagement while declining

    def __len__(self) -> int:
        return len(self.signup_s)

    @classmethod
    def empty(cls) -> Population:
        dtypes = {
            "signup_s": np.int64, "plan": np.int8, "bill_dom": np.int8, "primary_device": np.int8,
            "active": bool, "cancel_day": np.int32, "dunning": np.int8, "next_retry": np.int32,
            "declining": bool,
        }
        return cls(**{f.name: np.zeros(0, dtypes.get(f.name, np.float64)) for f in fields(cls)})

    def add(self, rng: np.random.Generator, signup_s: np.ndarray, device_mix: np.ndarray) -> np.ndarray:
        """Append ``len(signup_s)`` new subscribers; return their indices."""
        k = len(signup_s)
        start = len(self)
        days = signup_s.astype("datetime64[s]").astype("datetime64[D]")
        dom = (days - days.astype("datetime64[M]")).astype(np.int64) + 1
        mu = rng.normal(0.0, 0.55, k)
        reliable = rng.random(k) < 0.88
        new = {
            "signup_s": signup_s.astype(np.int64),
            "plan": rng.choice(3, size=k, p=PLAN_MIX).astype(np.int8),
            "bill_dom": np.minimum(dom, 28).astype(np.int8),
            "primary_device": rng.choice(len(device_mix), size=k, p=device_mix).astype(np.int8),
            "mu": mu,
            "eng": mu + rng.normal(0.0, 0.3, k),
            "p_fail": np.where(reliable, rng.beta(1.0, 60.0, k), rng.beta(2.0, 7.0, k)),
            "satisfaction": rng.normal(0.0, 1.0, k),
            "active": np.ones(k, bool),
            "cancel_day": np.full(k, -1, np.int32),
            "fail_recent": np.zeros(k),
            "tick_recent": np.zeros(k),
            "dunning": np.zeros(k, np.int8),
            "next_retry": np.full(k, -1, np.int32),
            "declining": np.zeros(k, bool),
            "decline_rate": np.zeros(k),
        }
        for name, values in new.items():
            setattr(self, name, np.concatenate([getattr(self, name), values]))
        return np.arange(start, start + k)

    def save(self, path: Path) -> None:
        np.savez(path, **{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(cls, path: Path) -> Population:
        with np.load(path) as z:
            return cls(**{f.name: z[f.name] for f in fields(cls)})
