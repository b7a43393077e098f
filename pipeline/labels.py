"""Labelled snapshots: features at scheduled cutoffs plus a forward churn label.

At cutoff ``t`` (a UTC midnight): the users with an active subscription at ``t`` (latest
signup after latest cancel, both ``<= t``); their feature vector at ``t`` from the batch
replay (events with ``ts <= t`` only, see :mod:`pipeline.features.replay`); label 1 if
the user has a cancel event (voluntary or involuntary) in ``(t, t + horizon]``. Cutoffs
whose horizon runs past the last event of the log are not labelled. Labels use every
valid cancel event, including one the feature engine rejected as late (the cancel still
happened; lateness only decides what the features saw).

The schedule is anchored at the end of the data: the last cutoff is the last midnight
whose horizon fits, earlier ones every ``every_days`` back to the activity start plus a
warm-up (default: the longest feature window, so no window reaches before the log).
"Activity start" is the first non-signup event: historical subscribers' signups carry
their original (possibly years-old) signup time, which says nothing about where the
history of activity begins.

>>> from datetime import date
>>> from pipeline.features.timebase import midnight_us
>>> [from_us(t).date().isoformat() for t in cutoff_schedule(
...     midnight_us(date(2026, 1, 1)), midnight_us(date(2026, 6, 30)) - 1, horizon_days=30)][-2:]
['2026-05-23', '2026-05-30']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import SplitError
from pipeline.features.columns import CANCEL, SIGNUP, EventColumns, decode_columns
from pipeline.features.registry import MAX_WINDOW
from pipeline.features.replay import ReplayStats, replay_partition
from pipeline.features.spec import DEFAULT_SPEC, FeatureSpec
from pipeline.features.state import FeatureState
from pipeline.features.timebase import DAY_US, NONE_US, from_us
from pipeline.log.base import PartitionLog

Progress = Callable[[int], None]  # records replayed since the last call


def activity_range(log: PartitionLog, head_limit: int = 1_000_000) -> tuple[int, int]:
    """(first non-signup event time, last event time) of the log, in epoch microseconds.

    Cheap: reads each partition's head up to its first non-signup record and its last
    2,000 records (the maximum over a tail tolerates late records at the end).
    """
    start, end = -NONE_US - 1, NONE_US
    for p in range(log.num_partitions):
        lo, hi = log.start_offset(p), log.end_offset(p)
        if hi <= lo:
            continue
        tail = decode_columns(log.fetch_values(p, max(lo, hi - 2000), max_records=2000)[0]).columns
        if len(tail):
            end = max(end, int(tail.ts.max()))
        off = lo
        while off < min(hi, lo + head_limit):
            values, nxt = log.fetch_values(p, off, max_records=5000)
            cols = decode_columns(values).columns
            act = np.flatnonzero(cols.code != SIGNUP)
            if len(act):
                start = min(start, int(cols.ts[act[0]]))
                break
            off = nxt
    if end == NONE_US or start > end:
        raise SplitError("the log holds no activity (only signups or nothing); run `churn simulate` or `churn import` first")
    return start, end


def cutoff_schedule(
    start_us: int, end_us: int, horizon_days: int = 30, every_days: int = 7, warmup_days: int = MAX_WINDOW
) -> list[int]:
    """Midnight cutoffs every ``every_days``, the last one with ``t + horizon <= end``."""
    if horizon_days < 1 or every_days < 1 or warmup_days < 0:
        raise SplitError(
            f"horizon ({horizon_days}), every ({every_days}) must be >= 1 day and warm-up "
            f"({warmup_days}) >= 0 days"
        )
    last = (end_us - horizon_days * DAY_US) // DAY_US * DAY_US
    first = -(-(start_us + warmup_days * DAY_US) // DAY_US) * DAY_US
    if last < first:
        span = (end_us - start_us) / DAY_US
        raise SplitError(
            f"{span:.0f} days of activity cannot fit a {warmup_days}-day warm-up plus a "
            f"{horizon_days}-day label horizon; simulate more days (or import a longer history), or lower --horizon/--warmup"
        )
    return list(range(last - (last - first) // (every_days * DAY_US) * every_days * DAY_US, last + 1, every_days * DAY_US))


def forward_labels(
    users: Sequence[str], cutoffs_us: np.ndarray, cancel_users: Sequence[str], cancel_us: np.ndarray, horizon_days: int
) -> np.ndarray:
    """1 where ``users[i]`` has a cancel in ``(cutoffs_us[i], cutoffs_us[i] + horizon]``."""
    rows = pd.DataFrame({"user_id": pd.Series(users, dtype=object), "t": np.asarray(cutoffs_us, np.int64)})
    rows["row"] = np.arange(len(rows))
    cancels = pd.DataFrame({"user_id": pd.Series(cancel_users, dtype=object), "c": np.asarray(cancel_us, np.int64)})
    hit = rows.merge(cancels, on="user_id", how="inner")
    hit = hit[(hit.c > hit.t) & (hit.c <= hit.t + horizon_days * DAY_US)]
    out = np.zeros(len(rows), np.int8)
    out[hit.row.to_numpy()] = 1
    return out


@dataclass
class Snapshots:
    """The labelled table plus what it was built from."""

    table: pd.DataFrame  # user_id, cutoff, partition, <features...>, label
    cutoffs: list[int]  # labelled cutoffs (epoch microseconds)
    horizon_days: int
    data_end_us: int
    stats: list[ReplayStats]
    states: dict[int, FeatureState] = field(default_factory=dict)  # final state per partition
    spec: FeatureSpec = DEFAULT_SPEC  # the topic's feature spec (columns: its engine_columns)
    latest: pd.DataFrame | None = None  # unlabelled features of the active users at ``latest_us``

    @property
    def records(self) -> int:
        return sum(s.records for s in self.stats)


def build_snapshots(
    log: PartitionLog,
    horizon_days: int = 30,
    every_days: int = 7,
    warmup_days: int = MAX_WINDOW,
    lateness: timedelta = timedelta(hours=24),
    cutoffs_us: Sequence[int] | None = None,
    progress: Progress | None = None,
    spec: FeatureSpec = DEFAULT_SPEC,
    latest_us: int | None = None,
) -> Snapshots:
    """Replay every partition, read active users at each cutoff, attach forward labels.

    ``spec``: the topic's feature spec (:func:`pipeline.features.spec.spec_for`); the table
    has every column the engine computes for it (``spec.engine_columns``).
    ``latest_us``: also read the active users' features at that time, unlabelled
    (``Snapshots.latest``; the same replay, so it costs one more read)."""
    if cutoffs_us is None:
        cutoffs_us = cutoff_schedule(*activity_range(log), horizon_days, every_days, warmup_days)
    scheduled = sorted(int(c) for c in cutoffs_us)
    cut = sorted(set(scheduled) | ({int(latest_us)} if latest_us is not None else set()))
    users: list[str] = []
    blocks: list[np.ndarray] = []  # feature values of the active users, one block per (partition, cutoff)
    row_cut: list[np.ndarray] = []
    row_part: list[np.ndarray] = []
    cancel_users: list[str] = []
    cancel_ts: list[np.ndarray] = []
    stats, states = [], {}

    def keep_cancels(cols: EventColumns) -> None:
        idx = np.flatnonzero(cols.code == CANCEL)
        if len(idx):
            cancel_users.extend(cols.user_ids[i] for i in idx.tolist())
            cancel_ts.append(cols.ts[idx])

    for p in range(log.num_partitions):

        def read_cutoff(t: int, st: FeatureState, p: int = p) -> None:
            f = st.read(t, st.active_users())
            users.extend(f.users)
            blocks.append(f.values)
            row_cut.append(np.full(len(f), t, np.int64))
            row_part.append(np.full(len(f), p, np.int16))

        state = FeatureState(lateness, spec=spec)
        stats.append(replay_partition(log, p, state, cut, read_cutoff, keep_cancels, progress=progress))
        states[p] = state
    data_end = max((s.max_ts_us for s in stats), default=NONE_US)
    labelled = [t for t in scheduled if t + horizon_days * DAY_US <= data_end]
    cutoff = np.concatenate(row_cut) if row_cut else np.zeros(0, np.int64)
    ids = np.asarray(users, dtype=object)
    latest = None
    if latest_us is not None:
        at = np.flatnonzero(cutoff == int(latest_us))
        at = at[np.argsort(ids[at], kind="stable")]
        latest = pd.DataFrame(np.concatenate(blocks)[at] if blocks else np.zeros((0, len(spec.engine_columns))),
                              columns=list(spec.engine_columns))  # fmt: skip
        latest.insert(0, "user_id", ids[at])
        latest.insert(1, "cutoff", pd.to_datetime(np.full(len(at), int(latest_us)), unit="us", utc=True))
    keep = np.flatnonzero(np.isin(cutoff, labelled))
    order = keep[np.lexsort((ids[keep], cutoff[keep]))] if len(keep) else keep  # by cutoff, then user
    columns = list(spec.engine_columns)
    values = np.concatenate(blocks)[order] if blocks else np.zeros((0, len(columns)))
    table = pd.DataFrame(values, columns=columns)
    del values
    table.insert(0, "user_id", ids[order])
    table.insert(1, "cutoff", pd.to_datetime(cutoff[order], unit="us", utc=True))
    table.insert(2, "partition", np.concatenate(row_part)[order] if row_part else np.zeros(0, np.int16))
    cts = np.concatenate(cancel_ts) if cancel_ts else np.zeros(0, np.int64)
    table["label"] = forward_labels(table.user_id.tolist(), cutoff[order], cancel_users, cts, horizon_days)
    return Snapshots(table, labelled, horizon_days, data_end, stats, states, spec, latest)


def write_snapshots(snap: Snapshots, path: Path, extra: dict[str, str] | None = None) -> Path:
    """Write the table as Parquet (atomically) with the feature-set version in its metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(snap.table, preserve_index=False)
    meta = {
        b"feature_set_version": snap.spec.version.encode(),
        b"horizon_days": str(snap.horizon_days).encode(),
        b"data_end": from_us(snap.data_end_us).isoformat().encode(),
        b"feature_spec": snap.spec.to_json().encode(),
    } | {k.encode(): v.encode() for k, v in (extra or {}).items()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def load_hazard(sim_dir: Path) -> pd.DataFrame:
    """The simulator's oracle side table: user_id, date, hazard (true daily churn prob.)."""
    parts = sorted((sim_dir / "hazard").glob("part-*.parquet"))
    if not parts:
        raise SplitError(f"no hazard table under {sim_dir / 'hazard'}; it is written by `churn simulate`")
    df = pd.concat([pd.read_parquet(p, columns=["user_id", "date", "hazard"]) for p in parts], ignore_index=True)
    df["user_id"] = df.user_id.astype(str)
    return df


def oracle_probability(
    table: pd.DataFrame, hazard: pd.DataFrame, horizon_days: int, method: str = "path"
) -> np.ndarray:
    """The simulator's true churn probability for each snapshot row (an upper-bound scorer).

    ``path`` (default): ``1 - prod(1 - hazard_d)`` over the H days of the label window
    (the day starting at midnight ``t`` is its first). It uses the *realised* hazard path,
    which ends on the day a user cancels (no hazard rows after), so churners' products run
    over fewer days; its mean is therefore below the label rate (on the default
    simulation ~5 % vs ~6 %), while ``sum(hazard_d)`` matches the label rate.
    ``current``: ``1 - (1 - hazard_t)^H`` from the hazard of the window's first day only,
    i.e. nothing after ``t`` is used. Days without a hazard row contribute 0.
    """
    if method not in ("path", "current"):
        raise SplitError(f"unknown oracle method {method!r}; use 'path' or 'current'")
    if not len(table):
        return np.zeros(0)
    users = pd.Index(pd.unique(table.user_id.astype(str)))
    hz = hazard[hazard.user_id.isin(users)]
    if not len(hz):
        return np.zeros(len(table))
    d0 = np.datetime64(min(table.cutoff.min().date(), pd.Timestamp(hz.date.min()).date()), "D")
    hz_day = (pd.to_datetime(hz.date).to_numpy().astype("datetime64[D]") - d0).astype(np.int64)
    row_day = (table.cutoff.dt.tz_convert(None).to_numpy().astype("datetime64[D]") - d0).astype(np.int64)
    n_days = int(max(hz_day.max(), row_day.max()) + horizon_days + 1)
    h = np.zeros((len(users), n_days + 1))
    h[users.get_indexer(hz.user_id), hz_day + 1] = np.clip(hz.hazard.to_numpy(np.float64), 0.0, 1.0 - 1e-12)
    u = users.get_indexer(table.user_id.astype(str))
    if method == "current":
        return 1.0 - (1.0 - h[u, row_day + 1]) ** horizon_days
    cum = np.cumsum(np.log1p(-h), axis=1)  # cum[:, k] = sum over days < k
    return 1.0 - np.exp(cum[u, row_day + horizon_days] - cum[u, row_day])
