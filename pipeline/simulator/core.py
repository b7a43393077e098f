"""A seeded, vectorised simulator of a subscription video platform.

The world, one simulated day at a time, all users at once (numpy):

* A base of existing subscribers (60 %, tenure up to two years) plus new signups
  spread over the simulated days, each on a plan (basic / standard / premium).
* A latent engagement per user that mean-reverts around the user's own level and
  drifts; sessions (Poisson, busier at weekends) and watch minutes follow it.
* Monthly billing on the user's billing day; cards fail (a few users often), with
  retries after 3, 4 and 7 days; the last failed retry is *involuntary* churn.
* Plan up/downgrades, support tickets (more after failures and during fades).
* Voluntary cancellation by a daily hazard that rises with low engagement, recent
  failed payments, tickets, price and early tenure, plus a hidden satisfaction no
  event reveals and a small random term. Some users enter a gradual decline
  (engagement fades for weeks before they leave); others leave abruptly.

Honesty instrument: the true daily churn hazard of every active user is recorded in a
side table (:attr:`DayResult.hazard`), never in the event stream, so training can
report the oracle's ROC-AUC as an upper bound.

Same seed -> byte-identical events. The simulator owns its ``numpy.random.Generator``.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from pipeline.errors import SimulatorError
from pipeline.simulator import encode as enc
from pipeline.simulator.population import PLAN_PRICES, Population
from pipeline.simulator.scenarios import DEVICE_MINUTES, check_scenario, effects

DAY = 86_400
EXISTING_SHARE = 0.6
RETRY_GAPS = (3, 4, 7)  # days after the failure / previous retry
RETRY_SUCCESS = 0.45


@dataclass(frozen=True)
class SimConfig:
    users: int = 20_000
    days: int = 180
    seed: int = 42
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    drift: str | None = None
    drift_day: int | None = None

    def __post_init__(self) -> None:
        if self.users < 1:
            raise SimulatorError(f"users must be >= 1 (got {self.users})")
        if self.days < 1:
            raise SimulatorError(f"days must be >= 1 (got {self.days})")
        if self.start.tzinfo is None or self.start.utcoffset().total_seconds() != 0:
            raise SimulatorError(f"start must be UTC midnight, got {self.start!r}")
        check_scenario(self.drift, self.drift_day)


@dataclass
class DayResult:
    day: int
    users: np.ndarray  # user index per line, in line order
    etypes: np.ndarray  # event type code per line (see encode.TYPE_NAMES)
    lines: list[bytes]  # encoded events, sorted by event time
    hazard_users: np.ndarray  # users active that day (incl. the day's new signups)
    hazard: np.ndarray  # their true probability of churning that day


class Simulator:
    """``Simulator(SimConfig(...)).run()`` yields one :class:`DayResult` per day."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        self.start_s = int(config.start.timestamp())
        self.pop = Population.empty()
        self.user_ids: list[str] = []
        self.user_keys: list[bytes] = []  # the same ids as bytes (partition keys, encoding)
        self.day = 0  # next day to simulate
        self.seq = 0  # next event sequence number
        self.id_prefix = f"s{config.seed}"
        self._schedule = self._signup_schedule()

    # -- population -----------------------------------------------------------------
    def _signup_schedule(self) -> np.ndarray:
        """New signups per simulated day (the history's 40 % newcomers)."""
        n_new = self.config.users - round(self.config.users * EXISTING_SHARE)
        return np.bincount(self.rng.integers(0, self.config.days, n_new), minlength=self.config.days)

    def _add_users(self, signup_s: np.ndarray) -> np.ndarray:
        idx = self.pop.add(self.rng, signup_s, effects(self.config.drift, self.config.drift_day, self.day).device_mix)
        new = [f"u{i:07d}" for i in idx.tolist()]
        self.user_ids.extend(new)
        self.user_keys.extend(u.encode() for u in new)
        return idx

    def user_id(self, index: int) -> str:
        return self.user_ids[index]

    # -- running --------------------------------------------------------------------
    def run(self, days: int | None = None):
        """Simulate ``days`` more days (default: the configured history)."""
        end = self.day + (self.config.days if days is None else days)
        while self.day < end:
            yield self.step()

    def step(self) -> DayResult:
        d = self.day
        parts: list[enc.DayColumns] = []
        if d == 0:
            parts.append(self._existing_base())
        parts += self._day_events(d)
        cols = enc.DayColumns.concat(parts)
        users, etypes, lines = enc.encode_day(cols, self.user_keys, self.id_prefix, self.seq)
        self.seq += len(lines)
        self.day += 1
        return DayResult(d, users, etypes, lines, self._hz_users, self._hz)

    def _existing_base(self) -> enc.DayColumns:
        k = round(self.config.users * EXISTING_SHARE)
        tenure_days = np.minimum(self.rng.exponential(240.0, k), 730.0)
        signup_s = self.start_s - (tenure_days * DAY).astype(np.int64) - 1
        idx = self._add_users(np.sort(signup_s))
        return enc.columns(self.pop.signup_s[idx], idx, enc.SIGNUP, cat=self.pop.plan[idx])

    def _day_events(self, d: int) -> list[enc.DayColumns]:
        """One simulated day, as its steps (the order fixes the random stream: keep it)."""
        fx = effects(self.config.drift, self.config.drift_day, d)
        t0 = self.start_s + d * DAY
        date = np.datetime64(t0, "s").astype("datetime64[D]")
        dom = int((date - date.astype("datetime64[M]")).astype(int)) + 1
        weekend = int((date.astype(np.int64) + 3) % 7) >= 5  # 1970-01-01 was a Thursday
        out: list[enc.DayColumns] = []
        self._signups(d, t0, fx, out)
        pop = self.pop
        act = np.flatnonzero(pop.active)
        last_ts = np.maximum(np.full(len(pop), t0, np.int64), pop.signup_s + 1)
        self._engagement(act)
        self._sessions(act, t0, weekend, fx, out, last_ts)
        failed_today, involuntary = self._billing(act, d, t0, dom, fx, out, last_ts)
        self._plan_changes(act, t0, fx, out, last_ts)
        ticketed = self._tickets(act, t0, fx, failed_today, out, last_ts)
        self._cancels(act, d, t0, involuntary, out, last_ts)
        self._decay(act, failed_today, ticketed)
        return out

    def _signups(self, d: int, t0: int, fx, out: list[enc.DayColumns]) -> None:
        """New signups today: signup + first payment (the card is checked at signup)."""
        rng, pop = self.rng, self.pop
        if d < len(self._schedule):
            n_new = int(self._schedule[d])
        else:  # live continuation keeps the history's average signup rate
            n_new = int(rng.poisson(self._schedule.mean()))
        if n_new:
            new = self._add_users(t0 + np.sort(rng.integers(0, DAY - 3600, n_new)))
            out.append(enc.columns(pop.signup_s[new], new, enc.SIGNUP, cat=pop.plan[new]))
            price = PLAN_PRICES[pop.plan[new]] * fx.price_mult
            out.append(enc.columns(pop.signup_s[new] + 1, new, enc.PAYMENT, price, pop.plan[new]))

    def _engagement(self, act: np.ndarray) -> None:
        """Engagement: mean reversion + noise; decliners fade for weeks."""
        rng, pop = self.rng, self.pop
        start_decline = act[(~pop.declining[act]) & (rng.random(len(act)) < 0.002)]
        pop.declining[start_decline] = True
        pop.decline_rate[start_decline] = rng.uniform(0.04, 0.12, len(start_decline))
        drift = 0.04 * (pop.mu[act] - pop.eng[act]) + rng.normal(0, 0.12, len(act))
        pop.eng[act] += np.where(pop.declining[act], -pop.decline_rate[act], drift)
        recover = act[pop.declining[act] & (rng.random(len(act)) < 0.01)]
        pop.declining[recover] = False

    def _sessions(self, act: np.ndarray, t0: int, weekend: bool, fx, out: list[enc.DayColumns],
                  last_ts: np.ndarray) -> None:  # fmt: skip
        """Sessions: Poisson per user by engagement, never before signup; device and minutes."""
        rng, pop = self.rng, self.pop
        floor = np.maximum(pop.signup_s[act] + 2 - t0, 0)  # nothing before signup
        lam = 0.95 * np.exp(pop.eng[act]) * (1.3 if weekend else 1.0) * fx.session_mult
        n_sess = rng.poisson(np.minimum(lam, 12.0))
        su = np.repeat(act, n_sess)
        s_floor = np.repeat(floor, n_sess)
        s_ts = t0 + s_floor + (rng.random(len(su)) * (DAY - 600 - s_floor)).astype(np.int64)
        primary = rng.random(len(su)) < fx.primary_device_p
        dev = np.where(primary, pop.primary_device[su], rng.choice(4, size=len(su), p=fx.device_mix))
        minutes = rng.lognormal(np.log(36.0) + 0.35 * pop.eng[su], 0.55) * DEVICE_MINUTES[dev]
        minutes = np.clip(minutes * fx.minutes_mult, 0.5, 600.0)
        out.append(enc.columns(s_ts, su, enc.SESSION, minutes, dev))
        np.maximum.at(last_ts, su, s_ts)

    def _billing(self, act: np.ndarray, d: int, t0: int, dom: int, fx, out: list[enc.DayColumns],
                 last_ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Billing on the billing day (not on the signup day, that was paid), then retries.

        Also fixes today's hazard (before today's retry outcomes). Returns (failed today
        mask, users whose last retry failed: involuntary cancels)."""
        rng, pop = self.rng, self.pop
        existing = act[pop.signup_s[act] < t0]
        due = existing[(pop.bill_dom[existing] == dom) & (pop.dunning[existing] == 0)]
        failed_today = np.zeros(len(pop), bool)
        if len(due):
            fail = rng.random(len(due)) < pop.p_fail[due]
            out.append(self._charges(due, fail, t0, fx.price_mult, last_ts))
            failed_today[due[fail]] = True
            pop.dunning[due[fail]] = 1
            pop.next_retry[due[fail]] = d + RETRY_GAPS[0]
        retry = act[(pop.dunning[act] > 0) & (pop.next_retry[act] == d)]
        # hazard of the day is fixed before today's random outcomes
        self._hazard(act, pop, fx, retry)
        involuntary = np.zeros(0, np.int64)
        if len(retry):
            fail = rng.random(len(retry)) >= RETRY_SUCCESS
            out.append(self._charges(retry, fail, t0, fx.price_mult, last_ts))
            failed_today[retry[fail]] = True
            ok = retry[~fail]
            pop.dunning[ok], pop.next_retry[ok] = 0, -1
            bad = retry[fail]
            stage = pop.dunning[bad].astype(int)
            involuntary = bad[stage >= len(RETRY_GAPS)]
            cont = bad[stage < len(RETRY_GAPS)]
            pop.next_retry[cont] = d + np.array(RETRY_GAPS)[pop.dunning[cont]]
            pop.dunning[cont] += 1
        return failed_today, involuntary

    def _plan_changes(self, act: np.ndarray, t0: int, fx, out: list[enc.DayColumns], last_ts: np.ndarray) -> None:
        """Plan changes: downgrades when engagement or price hurts, upgrades when hooked."""
        rng, pop = self.rng, self.pop
        e = pop.eng[act]
        p_down = (0.0006 + 0.002 * (e < -0.7)) * (4.0 if fx.price_mult > 1 else 1.0) * (pop.plan[act] > 0)
        p_up = (0.0004 + 0.0015 * (e > 0.7)) * (pop.plan[act] < 2)
        u = rng.random(len(act))
        down, up = act[u < p_down], act[(u >= p_down) & (u < p_down + p_up)]
        for who, step in ((down, -1), (up, 1)):
            if len(who):
                ts = self._after(who, t0, last_ts)
                out.append(enc.columns(ts, who, enc.PLAN_CHANGE, cat=pop.plan[who], cat2=pop.plan[who] + step))
                pop.plan[who] += step

    def _tickets(self, act: np.ndarray, t0: int, fx, failed_today: np.ndarray, out: list[enc.DayColumns],
                 last_ts: np.ndarray) -> np.ndarray:  # fmt: skip
        """Support tickets (after a failed charge, while declining, more in an outage); who filed one."""
        rng, pop = self.rng, self.pop
        rate = 0.004 + 0.25 * failed_today[act] + 0.012 * pop.declining[act] + fx.ticket_add
        tu = act[rng.random(len(act)) < rate]
        if len(tu):
            cat = np.where(failed_today[tu], 0, rng.choice([1, 2, 3], size=len(tu), p=[0.45, 0.3, 0.25]))
            if fx.ticket_add:
                cat = np.where(rng.random(len(tu)) < 0.6, rng.choice([1, 3], size=len(tu)), cat)
            out.append(enc.columns(self._after(tu, t0, last_ts), tu, enc.SUPPORT_TICKET, cat=cat))
        return tu

    def _cancels(self, act: np.ndarray, d: int, t0: int, involuntary: np.ndarray, out: list[enc.DayColumns],
                 last_ts: np.ndarray) -> None:  # fmt: skip
        """Cancellation: voluntary by hazard, involuntary after the last failed retry."""
        pop = self.pop
        voluntary = act[self.rng.random(len(act)) < self._hz_vol]
        voluntary = np.setdiff1d(voluntary, involuntary)
        for who, reason in ((voluntary, 0), (involuntary, 1)):
            if len(who):
                out.append(enc.columns(self._after(who, t0, last_ts), who, enc.CANCEL, cat=np.full(len(who), reason)))
                pop.active[who] = False
                pop.cancel_day[who] = d

    def _decay(self, act: np.ndarray, failed_today: np.ndarray, ticketed: np.ndarray) -> None:
        """Decay the memory of failures and tickets."""
        pop = self.pop
        pop.fail_recent[act] = pop.fail_recent[act] * 0.97 + failed_today[act]
        tickets = np.zeros(len(pop))
        tickets[ticketed] = 1.0
        pop.tick_recent[act] = pop.tick_recent[act] * 0.95 + tickets[act]

    def _hazard(self, act: np.ndarray, pop: Population, fx, retry: np.ndarray) -> None:
        """True churn probability of each active user today (the oracle's input)."""
        tenure = (self.start_s + self.day * DAY - pop.signup_s[act]) / DAY
        price = PLAN_PRICES[pop.plan[act]] * fx.price_mult
        z = (
            -7.7
            - 1.0 * pop.eng[act]
            + 0.55 * pop.fail_recent[act]
            + 0.45 * pop.tick_recent[act]
            + 0.09 * (price - 13.99)
            + 1.3 * np.exp(-np.maximum(tenure, 0) / 45.0)
            + 0.7 * pop.satisfaction[act]
        )
        h_vol = 1.0 / (1.0 + np.exp(-z)) + 0.0002
        p_inv = np.zeros(len(act))
        last_try = (pop.dunning[act] >= len(RETRY_GAPS)) & np.isin(act, retry)
        p_inv[last_try] = 1.0 - RETRY_SUCCESS
        self._hz_vol = h_vol
        self._hz_users = act
        self._hz = 1.0 - (1.0 - h_vol) * (1.0 - p_inv)

    def _charges(self, who, fail, t0, price_mult, last_ts) -> enc.DayColumns:
        pop = self.pop
        ts = t0 + self.rng.integers(3600, 6 * 3600, len(who))
        np.maximum.at(last_ts, who, ts)
        amount = PLAN_PRICES[pop.plan[who]] * price_mult
        cat = np.where(fail, self.rng.choice(3, size=len(who), p=[0.6, 0.25, 0.15]), pop.plan[who])
        etype = np.where(fail, enc.PAYMENT_FAILED, enc.PAYMENT)
        return enc.columns(ts, who, etype, amount, cat)

    def _after(self, who: np.ndarray, t0: int, last_ts: np.ndarray) -> np.ndarray:
        """A time after the user's last event today (keeps cancel last, order causal)."""
        lo = np.maximum(last_ts[who], t0) + 1
        ts = lo + (self.rng.random(len(who)) * np.maximum(t0 + DAY - 1 - lo, 0)).astype(np.int64)
        np.maximum.at(last_ts, who, ts)
        return ts

    # -- persistence: `churn produce` continues the same population --------------------
    def save(self, directory: Path) -> None:
        """Save atomically: the population goes to a file named by the day, then
        ``state.json`` (replaced in one rename) points at it. A write that fails half-way
        (a full disk, a kill) leaves the previous state whole, never a new population
        under an old day counter."""
        directory.mkdir(parents=True, exist_ok=True)
        name = f"population-{self.day:05d}.npz"
        for stale in directory.glob(".population-*.tmp.npz"):  # left by a failed save
            stale.unlink(missing_ok=True)
        tmp_pop = directory / f".{name}.tmp.npz"
        self.pop.save(tmp_pop)
        tmp_pop.replace(directory / name)
        cfg = asdict(self.config) | {"start": self.config.start.isoformat()}
        meta = {"config": cfg, "day": self.day, "seq": self.seq, "rng": self.rng.bit_generator.state,
                "population": name}  # fmt: skip
        tmp = directory / "state.json.tmp"
        tmp.write_text(json.dumps(meta))
        tmp.replace(directory / "state.json")
        for old in directory.glob("population*.npz"):
            if old.name != name:
                old.unlink(missing_ok=True)

    @classmethod
    def load(cls, directory: Path) -> Simulator:
        state = directory / "state.json"
        try:
            meta = json.loads(state.read_text())
            pop_path = directory / meta.get("population", "population.npz")
            config = SimConfig(**meta["config"] | {"start": datetime.fromisoformat(meta["config"]["start"])})
            sim = cls(config)
            sim.day, sim.seq = int(meta["day"]), int(meta["seq"])
            sim.rng.bit_generator.state = meta["rng"]
        except FileNotFoundError:
            raise SimulatorError(
                f"no simulator state in {directory}; run `churn simulate` first"
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:  # torn, not UTF-8, not its shape
            raise _unusable(state, exc) from None
        try:
            sim.pop = pop = Population.load(pop_path)
        # a cut file ends early (EOFError, BadZipFile), a flipped byte fails a CRC or a header
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, NotImplementedError) as exc:
            raise _unusable(pop_path, exc) from None
        sim.user_ids = [f"u{i:07d}" for i in range(len(pop))]
        sim.user_keys = [u.encode() for u in sim.user_ids]
        return sim


def _unusable(path: Path, exc: BaseException) -> SimulatorError:
    """The saved simulator cannot be rebuilt from the log (the population's hidden traits, the
    random state): a backup brings it back, else a new history; re-simulating into the same
    topic needs --overwrite, which deletes its events."""
    return SimulatorError(
        f"simulator state file {path} is unreadable ({type(exc).__name__}: {str(exc)[:160]}); `churn produce` "
        "cannot continue the simulated population without it (the events already in the log are not affected): "
        "restore the file from a backup, or start a new history with `churn simulate --overwrite` (it replaces "
        "the topic's events and this state) or in another --data-dir"
    )
