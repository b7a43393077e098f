"""The two hot loops, compiled with numba: apply a batch of events, read feature vectors.

Why a sequential compiled loop rather than ``np.add.at`` over (slot, day) indices: the
watermark moves *within* a batch, ties on "the latest plan" are broken by arrival order,
and a stale ring bucket must be zeroed before its first write. A loop in arrival order
gets all three right by construction, which makes "update many at once == update one by
one" true by design (tested), and it is faster than the numpy equivalent. Without numba
the same functions run as plain Python (slow, identical results).

Ring layout: per user slot ``s`` and bucket ``k = day % ring``, ``day_stamp[s, k]`` says
which absolute day the bucket holds; a bucket whose stamp differs from the day being
written is stale and is zeroed first, and a read ignores buckets whose stamp is not the
day it asks for. Per-day counts other than sessions are int16 and saturate at 32767.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.features.columns import (
    ACTIVITY,
    CANCEL,
    PAYMENT,
    PAYMENT_FAILED,
    PLAN_CHANGE,
    SESSION,
    SIGNUP,
    SUPPORT_TICKET,
)
from pipeline.features.jit import njit
from pipeline.features.registry import FEATURE_INDEX, MAX_WINDOW, PLAN_LIST_PRICES
from pipeline.features.timebase import DAY_US, NONE_US

EMPTY_DAY = -(2**31)
ACTION_BLOCK = 7  # features per action, see pipeline.features.spec.ACTION_FEATURES
_I16_MAX = 32767
_PRICES = np.asarray(PLAN_LIST_PRICES, dtype=np.float64)
_F = FEATURE_INDEX  # compile-time constants below
F_S7, F_S14, F_S30 = _F["sessions_7d"], _F["sessions_14d"], _F["sessions_30d"]
F_SPD7, F_SPD30 = _F["sessions_per_day_7d"], _F["sessions_per_day_30d"]
F_WPD7, F_WPD14, F_WPD30 = _F["watch_per_day_7d"], _F["watch_per_day_14d"], _F["watch_per_day_30d"]
F_WPS7, F_WPS30 = _F["watch_per_session_7d"], _F["watch_per_session_30d"]
F_ACT7, F_ACT30 = _F["active_days_7d"], _F["active_days_30d"]
F_STREND, F_WTREND, F_SLOPE = _F["sessions_trend_7v7"], _F["watch_trend_7v7"], _F["watch_slope_14d"]
F_W0, F_W1, F_W2 = _F["watch_today"], _F["watch_lag_1d"], _F["watch_lag_2d"]
F_DSLS = _F["days_since_last_session"]
F_PAY30, F_FAIL30, F_LASTFAIL = _F["payments_30d"], _F["payments_failed_30d"], _F["last_payment_failed"]
F_TIX7, F_TIX30, F_DOWN30, F_UP30 = _F["tickets_7d"], _F["tickets_30d"], _F["downgrades_30d"], _F["upgrades_30d"]
F_TENURE, F_TIER, F_PRICE = _F["tenure_days"], _F["plan_tier"], _F["plan_price"]


@njit(cache=True, nogil=True)
def apply_events(
    slot, ts, code, num, cat, cat2, lateness_us, watermark,
    day_stamp, sessions, watch, payments, failed, tickets, downgrades, upgrades,
    signup_us, cancel_us, plan, plan_us, last_session_us, charge_us, charge_amount, charge_failed,
    accepted,
):
    """Apply events in order; mark ``accepted[i]``; return the new watermark.

    An event is late (not applied) when ``ts < watermark - lateness`` where the watermark
    is the largest ``ts`` applied so far, including earlier events of this batch.
    """
    ring = day_stamp.shape[1]
    for i in range(slot.shape[0]):
        t = ts[i]
        if watermark != NONE_US and t < watermark - lateness_us:
            accepted[i] = False
            continue
        s = slot[i]
        c = code[i]
        if c != SIGNUP and c != CANCEL:
            d = (t - 1) // DAY_US
            k = d % ring
            if day_stamp[s, k] != d:
                if day_stamp[s, k] > d:  # cannot happen while ring > lateness days
                    accepted[i] = False
                    continue
                day_stamp[s, k] = d
                sessions[s, k] = 0
                watch[s, k] = 0.0
                payments[s, k] = 0
                failed[s, k] = 0
                tickets[s, k] = 0
                downgrades[s, k] = 0
                upgrades[s, k] = 0
            if c == SESSION:
                sessions[s, k] += 1
                watch[s, k] += num[i]
                if t > last_session_us[s]:
                    last_session_us[s] = t
            elif c in (PAYMENT, PAYMENT_FAILED):
                if c == PAYMENT:
                    if payments[s, k] < _I16_MAX:
                        payments[s, k] += 1
                    if t >= plan_us[s]:
                        plan[s] = cat[i]
                        plan_us[s] = t
                elif failed[s, k] < _I16_MAX:
                    failed[s, k] += 1
                if t >= charge_us[s]:
                    charge_us[s] = t
                    charge_amount[s] = num[i]
                    charge_failed[s] = 1 if c == PAYMENT_FAILED else 0
            elif c == PLAN_CHANGE:
                if cat2[i] < cat[i]:
                    if downgrades[s, k] < _I16_MAX:
                        downgrades[s, k] += 1
                elif upgrades[s, k] < _I16_MAX:
                    upgrades[s, k] += 1
                if t >= plan_us[s]:
                    plan[s] = cat2[i]
                    plan_us[s] = t
            elif c == SUPPORT_TICKET and tickets[s, k] < _I16_MAX:
                tickets[s, k] += 1
        elif c == SIGNUP:
            if t > signup_us[s]:
                signup_us[s] = t
            if t >= plan_us[s]:
                plan[s] = cat[i]
                plan_us[s] = t
        elif t > cancel_us[s]:
            cancel_us[s] = t
        accepted[i] = True
        if t > watermark:
            watermark = t
    return watermark


@njit(cache=True, nogil=True)
def first_touched(slot, accepted, seen, mark):
    """The slots of the accepted events, each once, in first-appearance order (what
    ``pd.unique(slot[accepted])`` returns: ~80 ns a row through its hash table, a few here).
    ``seen[s]``: the ``mark`` of the last call that listed slot ``s``; ``mark`` is new per call."""
    out = np.empty(slot.shape[0], np.int64)
    k = 0
    for i in range(slot.shape[0]):
        if accepted[i]:
            s = slot[i]
            if seen[s] != mark:
                seen[s] = mark
                out[k] = s
                k += 1
    return out[:k]


@njit(cache=True, nogil=True)
def _buckets(td, ring):
    """The ring bucket of each of the ``MAX_WINDOW`` days up to ``td`` (``td - b`` for
    ``b`` = 0, 1, ...): computed once per read, not once per user and day (an integer
    division each: about half of a read's time)."""
    out = np.empty(MAX_WINDOW, np.int64)
    for b in range(MAX_WINDOW):
        out[b] = (td - b) % ring
    return out


@njit(cache=True, nogil=True)
def read_features(
    slots, t,
    day_stamp, sessions, watch, payments, failed, tickets, downgrades, upgrades,
    signup_us, plan, last_session_us, charge_us, charge_amount, charge_failed,
    out,
):
    """Fill ``out[j]`` with the feature vector of ``slots[j]`` at time ``t`` (registry order)."""
    td = (t - 1) // DAY_US
    bucket = _buckets(td, day_stamp.shape[1])
    w_day = np.zeros(MAX_WINDOW)
    s_day = np.zeros(MAX_WINDOW)
    for j in range(slots.shape[0]):
        s = slots[j]
        pay30 = 0.0
        fail30 = 0.0
        tix7 = 0.0
        tix30 = 0.0
        down30 = 0.0
        up30 = 0.0
        for b in range(MAX_WINDOW):
            d = td - b
            k = bucket[b]
            if day_stamp[s, k] != d:
                w_day[b] = 0.0
                s_day[b] = 0.0
                continue
            w_day[b] = watch[s, k]
            s_day[b] = sessions[s, k]
            pay30 += payments[s, k]
            fail30 += failed[s, k]
            tix30 += tickets[s, k]
            if b < 7:
                tix7 += tickets[s, k]
            down30 += downgrades[s, k]
            up30 += upgrades[s, k]
        s7 = s14 = s30 = 0.0
        w7 = w14 = w30 = 0.0
        a7 = a30 = 0.0
        for b in range(MAX_WINDOW):
            s30 += s_day[b]
            w30 += w_day[b]
            if s_day[b] > 0:
                a30 += 1.0
            if b < 14:
                s14 += s_day[b]
                w14 += w_day[b]
            if b < 7:
                s7 += s_day[b]
                w7 += w_day[b]
                if s_day[b] > 0:
                    a7 += 1.0
        known = signup_us[s] != NONE_US
        since = td - (signup_us[s] - 1) // DAY_US + 1 if known else MAX_WINDOW
        since = max(since, 1)
        o7 = float(min(7, since))
        o14 = min(14, since)
        o30 = float(min(30, since))
        row = out[j]
        row[F_S7] = s7
        row[F_S14] = s14
        row[F_S30] = s30
        row[F_SPD7] = s7 / o7
        row[F_SPD30] = s30 / o30
        row[F_WPD7] = w7 / o7
        row[F_WPD14] = w14 / o14
        row[F_WPD30] = w30 / o30
        row[F_WPS7] = w7 / s7 if s7 > 0 else 0.0
        row[F_WPS30] = w30 / s30 if s30 > 0 else 0.0
        row[F_ACT7] = a7
        row[F_ACT30] = a30
        row[F_STREND] = math.log((1.0 + s7) / (1.0 + s14 - s7))
        row[F_WTREND] = math.log1p(w7) - math.log1p(w14 - w7)
        slope = 0.0
        if o14 >= 2:
            xbar = (o14 - 1) / 2.0
            sxx = 0.0
            sxy = 0.0
            for b in range(o14):
                dx = (o14 - 1 - b) - xbar
                sxx += dx * dx
                sxy += dx * w_day[b]
            slope = sxy / sxx
        row[F_SLOPE] = slope
        row[F_W0] = w_day[0]
        row[F_W1] = w_day[1]
        row[F_W2] = w_day[2]
        if last_session_us[s] != NONE_US:
            row[F_DSLS] = (t - last_session_us[s]) / DAY_US
        elif known:
            row[F_DSLS] = (t - signup_us[s]) / DAY_US
        else:
            row[F_DSLS] = 0.0
        row[F_PAY30] = pay30
        row[F_FAIL30] = fail30
        row[F_LASTFAIL] = float(charge_failed[s])
        row[F_TIX7] = tix7
        row[F_TIX30] = tix30
        row[F_DOWN30] = down30
        row[F_UP30] = up30
        row[F_TENURE] = (t - signup_us[s]) / DAY_US if known else 0.0
        row[F_TIER] = float(plan[s])
        if charge_us[s] != NONE_US:
            row[F_PRICE] = charge_amount[s]
        elif plan[s] >= 0:
            row[F_PRICE] = _PRICES[plan[s]]
        else:
            row[F_PRICE] = 0.0


# -- per-action state (topics with a declared action vocabulary) ------------------------
# A second pass over the batch, after apply_events decided which events are accepted:
# the action ring has its own day stamps and only activity events touch it, so applying
# it after the built-in pass gives exactly the state of applying the events one by one.
@njit(cache=True, nogil=True)
def apply_actions(slot, ts, code, cat, accepted, act_stamp, act_count, act_last_us):
    """Count accepted ``activity`` events per (user, day, action); keep the last time per action."""
    ring = act_stamp.shape[1]
    n_act = act_count.shape[2]
    for i in range(slot.shape[0]):
        if code[i] != ACTIVITY or not accepted[i]:
            continue
        a = cat[i]
        if a < 0 or a >= n_act:  # not in the vocabulary (decoding dead-letters these)
            continue
        s = slot[i]
        t = ts[i]
        d = (t - 1) // DAY_US
        k = d % ring
        if act_stamp[s, k] != d:
            act_stamp[s, k] = d
            for b in range(n_act):
                act_count[s, k, b] = 0
        if act_count[s, k, a] < _I16_MAX:
            act_count[s, k, a] += 1
        if t > act_last_us[s, a]:
            act_last_us[s, a] = t


@njit(cache=True, nogil=True)
def read_actions(slots, t, signup_us, act_stamp, act_count, act_last_us, out, col0):
    """Fill ``out[j, col0:]`` with the action block (see :mod:`pipeline.features.spec`):
    ``activity_days_7d, activity_days_30d``, then per action 1/7/14/30-day counts,
    per-active-day rate (30 d), 7-vs-7-day trend and days since last."""
    n_act = act_count.shape[2]
    td = (t - 1) // DAY_US
    bucket = _buckets(td, act_stamp.shape[1])
    c1 = np.zeros(n_act)
    c7 = np.zeros(n_act)
    c14 = np.zeros(n_act)
    c30 = np.zeros(n_act)
    for j in range(slots.shape[0]):
        s = slots[j]
        c1[:] = 0.0
        c7[:] = 0.0
        c14[:] = 0.0
        c30[:] = 0.0
        days7 = 0.0
        days30 = 0.0
        for b in range(MAX_WINDOW):
            d = td - b
            k = bucket[b]
            if act_stamp[s, k] != d:
                continue
            any_ = False
            for a in range(n_act):
                n = act_count[s, k, a]
                if n > 0:
                    any_ = True
                    c30[a] += n
                    if b < 14:
                        c14[a] += n
                    if b < 7:
                        c7[a] += n
                    if b < 1:
                        c1[a] += n
            if any_:
                days30 += 1.0
                if b < 7:
                    days7 += 1.0
        row = out[j]
        row[col0] = days7
        row[col0 + 1] = days30
        known = signup_us[s] != NONE_US
        for a in range(n_act):
            c = col0 + 2 + a * ACTION_BLOCK
            row[c] = c1[a]
            row[c + 1] = c7[a]
            row[c + 2] = c14[a]
            row[c + 3] = c30[a]
            row[c + 4] = c30[a] / days30 if days30 > 0 else 0.0
            row[c + 5] = math.log((1.0 + c7[a]) / (1.0 + c14[a] - c7[a]))
            if act_last_us[s, a] != NONE_US:
                row[c + 6] = (t - act_last_us[s, a]) / DAY_US
            elif known:
                row[c + 6] = (t - signup_us[s]) / DAY_US
            else:
                row[c + 6] = 0.0
