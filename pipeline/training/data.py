"""The training data: labelled snapshots from the log, split by time, plus the references.

Builds on :mod:`pipeline.labels` (snapshots at cutoffs, forward labels) and
:mod:`pipeline.split` (train / val / test with gaps >= the horizon). Adds the two honesty
references the flow reports beside the candidates:

* **oracle**: the simulator's true hazard at the cutoff (from the hidden state no event
  reveals) turned into P(churn in (t, t+H]), a practical upper bound. Only where a hazard side table exists (``<sim_dir>/hazard/``); any other
  event log simply has no oracle row.
* **leaky control**: the same features computed at ``cutoff + horizon``, i.e. after the
  label window. A model on them must score near 1.0; that the honest pipeline does not
  is the evidence that its features do not see the label window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import TrainingError
from pipeline.features.registry import FEATURE_SET_VERSION, describe
from pipeline.features.replay import replay_partition
from pipeline.features.spec import DEFAULT_SPEC, FeatureSpec, spec_for_log
from pipeline.features.state import FeatureState
from pipeline.features.timebase import DAY_US, midnight_us
from pipeline.labels import activity_range, build_snapshots, cutoff_schedule, load_hazard
from pipeline.log.base import PartitionLog
from pipeline.split import CVPlan, assign, report, rolling_origin, temporal_split

LEAKY_SUFFIX = "_at_h"
ID_COLUMNS = ("user_id", "cutoff")


@dataclass
class Dataset:
    """Labelled rows with a ``split`` column (train / val / test); gap rows are dropped.

    With a cross-validation plan (``cv``) there is no ``val`` part: ``train`` holds every
    cutoff before the test window and ``cv.folds`` say which of them each fold fits on and
    scores.
    """

    table: pd.DataFrame
    features: list[str]
    horizon_days: int
    feature_set_version: str = FEATURE_SET_VERSION
    feature_registry: list[dict[str, Any]] = field(default_factory=describe)
    split_report: dict[str, Any] = field(default_factory=dict)
    cv: CVPlan | None = None
    spec: FeatureSpec = DEFAULT_SPEC  # the topic's feature spec; features == list(spec.names) when built here
    # unlabelled features of the users active at the data's last midnight (build_dataset(latest=True)):
    # the world as it is now, e.g. the drift reference of a model retrained after a drift
    latest: pd.DataFrame | None = None

    def part(self, name: str) -> pd.DataFrame:
        return self.table[self.table["split"] == name]

    def window(self, name: str) -> tuple[str, str]:
        c = self.part(name)["cutoff"]
        return c.min().date().isoformat(), c.max().date().isoformat()

    @property
    def registry_doc(self) -> dict[str, Any]:
        return {"feature_set_version": self.feature_set_version, "horizon_days": self.horizon_days,
                "features": self.feature_registry, "feature_spec": self.spec.document()}

    @property
    def directions(self) -> dict[str, int]:
        """feature -> +1/-1 monotone directions the topic's spec vouches for (see FeatureSpec.directions)."""
        return {f: d for f, d in self.spec.directions.items() if f in self.features}


def build_dataset(
    log: PartitionLog,
    horizon_days: int = 30,
    every_days: int = 7,
    start: date | None = None,
    end: date | None = None,
    val_frac: float = 0.2,
    test_frac: float = 0.2,
    progress: Callable[[int], None] | None = None,
    folds: int | None = None,
    gap_days: int | None = None,
    warmup_days: int | None = None,
    spec: FeatureSpec | None = None,
    latest: bool = False,
) -> Dataset:
    """Replay ``log`` into labelled snapshots within [start, end] and split them by time.

    ``latest``: also keep the active users' unlabelled features at the last midnight of
    the window (``Dataset.latest``).

    ``folds=None``: train / val / test (:func:`pipeline.split.temporal_split`). ``folds=k``:
    a test window and up to k rolling-origin folds before it (:func:`pipeline.split.rolling_origin`).
    ``spec``: the topic's feature spec; by default the one stored beside a file log
    (:func:`pipeline.features.spec.spec_for_log`), i.e. the simulator's features for a simulated topic.
    """
    spec = spec_for_log(log) if spec is None else spec
    a_start, a_end = activity_range(log)
    lo = max(a_start, midnight_us(start)) if start else a_start
    hi = min(a_end, midnight_us(end + timedelta(days=1)) - 1) if end else a_end
    warm = {} if warmup_days is None else {"warmup_days": warmup_days}
    cutoffs = cutoff_schedule(lo, hi, horizon_days, every_days, **warm)
    snap = build_snapshots(log, horizon_days, every_days, cutoffs_us=cutoffs, progress=progress, spec=spec,
                           latest_us=hi // DAY_US * DAY_US if latest else None)  # fmt: skip
    ds = split_snapshots(snap.table, list(spec.names), horizon_days, snap.cutoffs, folds=folds,
                         val_frac=val_frac, test_frac=test_frac, gap_days=gap_days, spec=spec)
    ds.latest = snap.latest
    return ds


def reference_sample(ds: Dataset, seed: int, n: int = 5_000, min_rows: int = 500) -> pd.DataFrame:
    """The sample a model's drift checks compare the stream with (logged with the model).

    Normally the training part. When the dataset holds the users' features at its last
    midnight (``build_dataset(latest=True)``, a retrain after a drift) and at least
    ``min_rows`` of them, those: the training window straddles the change, so its rows
    describe a world half gone, and a promoted model checked against them would be
    "drifted" from the day it starts (slow 30-day features keep moving for a month)."""
    rows = ds.latest if ds.latest is not None and len(ds.latest) >= min_rows else ds.part("train")
    return rows.sample(min(n, len(rows)), random_state=seed)


def split_snapshots(table: pd.DataFrame, features: list[str], horizon_days: int, cutoffs_us: list[int] | None = None,
                    folds: int | None = None, val_frac: float = 0.2, test_frac: float = 0.2,
                    gap_days: int | None = None, spec: FeatureSpec | None = None) -> Dataset:
    """Split a labelled snapshot table by time (see :func:`build_dataset`); gap rows dropped.

    ``spec``: the feature spec the table was built with (recorded with the dataset and its models)."""
    if cutoffs_us is None:
        cutoffs_us = sorted(set(table["cutoff"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
                                .astype("datetime64[us]").astype(np.int64).tolist()))
    cv = None
    if folds is None:
        plan = temporal_split(cutoffs_us, horizon_days, val_frac=val_frac, test_frac=test_frac, gap_days=gap_days)
    else:
        cv = rolling_origin(cutoffs_us, horizon_days, folds=folds, test_frac=test_frac, gap_days=gap_days)
        plan = cv.as_temporal()
    table = table.copy()
    table["split"] = assign(table["cutoff"], plan).astype(str)
    rep = report(table, plan)
    if cv is not None:
        rep["folds"] = [{"fold": f.index, "train_cutoffs": len(f.train), "eval_cutoffs": len(f.evaluate)}
                        for f in cv.folds]
        rep["notes"] = list(cv.notes)
    table = table[table["split"] != "gap"].reset_index(drop=True)
    if spec is None:
        return from_frame(table, features, horizon_days, split_report=rep, cv=cv)
    return from_frame(table, features, horizon_days, split_report=rep, cv=cv, spec=spec,
                      feature_set_version=spec.version, feature_registry=feature_rows(spec))


def feature_rows(spec: FeatureSpec) -> list[dict[str, Any]]:
    """The registry doc's rows for the spec's features (built-in rows, then one per action feature)."""
    rows = [r for r in describe() if r["name"] in set(spec.builtin)]
    kinds = {"1d": (1, "count"), "7d": (7, "count"), "14d": (14, "count"), "30d": (30, "count"),
             "per_active_day_30d": (30, "rate"), "trend_7v7": (14, "ratio"), "days_since_last": (None, "days")}
    for name in spec.action_columns:
        action = next((a.name for a in spec.actions if name in a.feature_names()), None)
        suffix = name.removeprefix(f"act_{action}_") if action else name.removeprefix("activity_days_")
        window, kind = kinds[suffix]
        rows.append({"name": name, "description": f"{suffix} of the declared action {action!r} (pipeline/features/spec.py)"
                     if action else f"days with at least one declared-action event, last {window} days",
                     "window_days": window, "kind": kind, "default": 0.0, "action": action,
                     "direction": spec.directions.get(name, 0)})
    return rows


def from_frame(table: pd.DataFrame, features: list[str], horizon_days: int, **kw: Any) -> Dataset:
    """Wrap an already split table (e.g. :func:`pipeline.testing.training.synthetic_snapshots`)."""
    for col in (*ID_COLUMNS, "label", "split", *features):
        if col not in table.columns:
            raise TrainingError(f"snapshot table lacks column {col!r}")
    parts = ("train", "test") if kw.get("cv") is not None else ("train", "val", "test")
    if len(table) and not table["label"].fillna(0).any():  # say why, not only that a part lacks churners
        raise TrainingError(
            f"no user churned within {horizon_days} days of any cutoff ({len(table):,} snapshot rows, 0 churners): "
            "the log has no cancel events in the labelled window. An imported source: map its cancellation to "
            "`cancel` in the mapping, or use `churn: {definition: inactivity, inactive_days: N}`, and import "
            "again into a new topic or data directory (an import never rewrites events already in the log; "
            "docs/import.md); a simulation: simulate more days or users"
        )
    for part in parts:
        sub = table[table["split"] == part]
        if sub.empty or sub["label"].nunique() < 2:
            raise TrainingError(
                f"the {part} part has {len(sub)} rows and {int(sub['label'].sum())} churners; every part needs "
                "both classes - bring more users/days (`churn simulate` or `churn import`), widen the data window or shorten the horizon"
            )
    return Dataset(table, list(features), horizon_days, **kw)


def oracle_scores(ds: Dataset, sim_dir: Path | None) -> np.ndarray | None:
    """The simulator's true churn risk at each cutoff, or None without a hazard table.

    ``1 - (1 - h_t)^H`` with ``h_t`` the true hazard of the day starting at the cutoff,
    i.e. computed from the user's full hidden state at ``t`` (satisfaction, engagement,
    card reliability) and held for the horizon. Deliberately *not* the product of the
    realised daily hazards over the window (``pipeline.labels.oracle_probability``): the
    hazard table stops at a user's cancel, so that product covers fewer days exactly for
    the churners and scores them lower - it ranks worse than the models (ROC-AUC 0.70 vs
    0.81 on the default simulation).
    """
    if sim_dir is None or not any((sim_dir / "hazard").glob("part-*.parquet")):
        return None
    hz = load_hazard(sim_dir)
    hz["date"] = pd.to_datetime(hz["date"]).dt.normalize()
    key = pd.DataFrame({"user_id": ds.table["user_id"].astype(str).to_numpy(),
                        "date": ds.table["cutoff"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize().to_numpy()})
    h = key.merge(hz.drop_duplicates(["user_id", "date"]), on=["user_id", "date"], how="left")["hazard"]
    h = np.nan_to_num(h.to_numpy(dtype=np.float64), nan=0.0)  # no row: not active that day in the simulator
    return 1.0 - (1.0 - np.clip(h, 0.0, 1.0)) ** ds.horizon_days


def leaky_features(log: PartitionLog, ds: Dataset, lateness: timedelta = timedelta(hours=24)) -> pd.DataFrame:
    """Each row's features computed at ``cutoff + horizon`` (after its label window).

    Columns ``<feature>_at_h``, aligned with ``ds.table``. Another replay of the log,
    reading the same users at the shifted times.
    """
    table = ds.table
    if "partition" not in table.columns:
        raise TrainingError("the leaky control needs the snapshot's `partition` column")
    shift = ds.horizon_days * DAY_US
    cut_us = table["cutoff"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[us]").astype(np.int64)
    out = np.zeros((len(table), len(ds.features)))
    columns = ds.spec.engine_columns
    col_idx = [columns.index(f) for f in ds.features]
    parts = table["partition"].to_numpy()
    for p in np.unique(parts).tolist():
        rows_p = np.flatnonzero(parts == p)
        times = sorted(set((cut_us[rows_p] + shift).tolist()))

        def read(t: int, st: FeatureState, rows_p: np.ndarray = rows_p) -> None:
            rows = rows_p[cut_us[rows_p] + shift == t]
            f = st.read(t, table["user_id"].iloc[rows].tolist())
            out[rows] = f.values[:, col_idx]

        replay_partition(log, int(p), FeatureState(lateness, spec=ds.spec), times, read, stop_after_last_cutoff=True)
    return pd.DataFrame(out, columns=[f + LEAKY_SUFFIX for f in ds.features], index=table.index)
