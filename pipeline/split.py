"""Temporal train / validation / test split of labelled snapshots, with label gaps.

Parts are contiguous ranges of cutoffs in time order: train, then validation, then
test. Between two parts the next part's first cutoff is at least ``gap_days`` (default:
the label horizon) after the previous part's last cutoff, so every label window
``(t, t + horizon]`` of an earlier part ends no later than the first cutoff of the next:
no training label looks into the validation or test period, and no validation label
into the test period. Cutoffs inside a gap are not used (reported as ``gap``).

Sizes: the test and validation parts get ``test_frac`` / ``val_frac`` of the usable
cutoffs (at least one each when the fraction is > 0), train the rest.

>>> DAY = 86_400_000_000
>>> plan = temporal_split([k * 7 * DAY for k in range(18)], horizon_days=30)
>>> [len(plan.cutoffs[p]) for p in ("train", "val", "test", "gap")]
[6, 2, 2, 8]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import SplitError
from pipeline.features.timebase import DAY_US, from_us

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitPlan:
    cutoffs: dict[str, list[int]]  # part (train/val/test/gap) -> cutoffs in epoch microseconds
    horizon_days: int
    gap_days: int

    def part_of(self, cutoff_us: int) -> str:
        for part, cuts in self.cutoffs.items():
            if cutoff_us in cuts:
                return part
        raise SplitError(f"cutoff {from_us(cutoff_us).isoformat()} is not in this split plan")


def temporal_split(
    cutoffs_us: Sequence[int], horizon_days: int = 30, val_frac: float = 0.2, test_frac: float = 0.2,
    gap_days: int | None = None,
) -> SplitPlan:
    """Choose train / val / test cutoffs by time, dropping those inside the gaps."""
    gap = horizon_days if gap_days is None else gap_days
    if gap < horizon_days:
        raise SplitError(f"gap_days={gap} is shorter than the horizon ({horizon_days}); labels would overlap the next part")
    if not (0 <= val_frac < 1 and 0 < test_frac < 1 and val_frac + test_frac < 1):
        raise SplitError(f"val_frac={val_frac}, test_frac={test_frac}: need 0 <= val, 0 < test and val + test < 1")
    cut = sorted(set(int(c) for c in cutoffs_us))
    usable = len(cut)
    for _ in range(8):  # sizes are fractions of the cutoffs left after the gaps: iterate to a fixpoint
        n_test = max(1, round(test_frac * usable))
        n_val = max(1, round(val_frac * usable)) if val_frac > 0 else 0
        parts = _carve(cut, n_test, n_val, gap * DAY_US)
        if len(cut) - len(parts["gap"]) == usable:
            break
        usable = len(cut) - len(parts["gap"])
    if not parts["train"]:
        raise SplitError(
            f"{len(cut)} cutoffs leave {len(parts['train'])} for training after the gap(s) of {gap} days; "
            "lower --every (more cutoffs), shorten --horizon, or simulate more days / import a longer history"
        )
    return SplitPlan(parts, horizon_days, gap)


def _carve(cut: list[int], n_test: int, n_val: int, gap_us: int) -> dict[str, list[int]]:
    """Take test from the end, then val, each preceded by a gap of dropped cutoffs."""
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": [], "gap": []}
    rest = list(cut)
    for part, n in (("test", n_test), ("val", n_val)):
        if n == 0:
            continue
        take, rest = rest[-n:], rest[:-n]
        parts[part] = take
        while rest and take and take[0] - rest[-1] < gap_us:
            parts["gap"].append(rest.pop())
    parts["train"] = rest
    parts["gap"].sort()
    return parts


def assign(cutoffs: pd.Series, plan: SplitPlan) -> pd.Series:
    """The part name of every row, from its ``cutoff`` (aware timestamps)."""
    us = cutoffs.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[us]").astype(np.int64)
    lookup = {c: part for part, cuts in plan.cutoffs.items() for c in cuts}
    parts = pd.Series(us, index=cutoffs.index).map(lookup)
    if parts.isna().any():
        raise SplitError("some rows have cutoffs that are not in the split plan; build the plan from the table's cutoffs")
    return parts.astype(pd.CategoricalDtype([*PARTS, "gap"]))


def report(table: pd.DataFrame, plan: SplitPlan) -> dict[str, Any]:
    """Per part: cutoff range, number of cutoffs, rows, positives and positive rate."""
    split = table["split"] if "split" in table else assign(table.cutoff, plan)
    out: dict[str, Any] = {"horizon_days": plan.horizon_days, "gap_days": plan.gap_days, "parts": {}}
    for part in (*PARTS, "gap"):
        cuts = plan.cutoffs.get(part, [])
        rows = table[split == part]
        out["parts"][part] = {
            "first_cutoff": from_us(cuts[0]).date().isoformat() if cuts else None,
            "last_cutoff": from_us(cuts[-1]).date().isoformat() if cuts else None,
            "cutoffs": len(cuts),
            "rows": len(rows),
            "positives": int(rows.label.sum()),
            "positive_rate": float(rows.label.mean()) if len(rows) else 0.0,
        }
    return out


# -- rolling-origin (expanding-window) cross-validation ------------------------------------
@dataclass(frozen=True)
class Fold:
    """One fold: fit on ``train`` cutoffs, score on ``evaluate`` cutoffs (epoch microseconds).

    Every training cutoff is at least the gap (>= the horizon) before the fold's first
    evaluation cutoff, so no training label window ``(t, t + H]`` reaches it.
    """

    index: int
    train: tuple[int, ...]
    evaluate: tuple[int, ...]


@dataclass(frozen=True)
class CVPlan:
    """Held-out test cutoffs at the end; rolling-origin folds over every cutoff before them.

    ``pretest`` are all labelled cutoffs whose label windows end before the test window
    (the refit uses all of them); ``gap`` are the cutoffs dropped between pretest and test;
    ``notes`` say in words where the data forced fewer folds than asked.
    """

    pretest: tuple[int, ...]
    test: tuple[int, ...]
    gap: tuple[int, ...]
    folds: tuple[Fold, ...]
    horizon_days: int
    gap_days: int
    folds_requested: int
    notes: tuple[str, ...] = ()

    def as_temporal(self) -> SplitPlan:
        """The same cutoffs as a train (= pretest) / test plan, for :func:`assign`."""
        return SplitPlan({"train": list(self.pretest), "val": [], "test": list(self.test), "gap": list(self.gap)},
                         self.horizon_days, self.gap_days)


def rolling_origin(
    cutoffs_us: Sequence[int], horizon_days: int = 30, folds: int = 4, test_frac: float = 0.2,
    gap_days: int | None = None, min_train_cutoffs: int = 2,
) -> CVPlan:
    """Test window at the end, then up to ``folds`` expanding-window folds before it.

    Evaluation cutoffs are the pretest cutoffs that have at least ``min_train_cutoffs``
    cutoffs a gap earlier; they are cut into ``folds`` contiguous blocks (all of them are
    used, so every eligible churner is scored once). A fold trains on every pretest cutoff
    at least the gap before its block's first cutoff. Short data degrades: fewer folds, then
    one training cutoff per fold, each step recorded in ``notes``; only when not even one
    fold fits is it refused, with what to change.

    >>> DAY = 86_400_000_000
    >>> plan = rolling_origin([k * 7 * DAY for k in range(18)], horizon_days=30)
    >>> len(plan.pretest), len(plan.test), [len(f.evaluate) for f in plan.folds]
    (11, 3, [2, 1, 1, 1])
    """
    gap = horizon_days if gap_days is None else gap_days
    if gap < horizon_days:
        raise SplitError(f"gap_days={gap} is shorter than the horizon ({horizon_days}); labels would overlap the next part")
    if folds < 1:
        raise SplitError(f"folds={folds}: need at least 1 (3 or more to tell candidates apart)")
    if not 0 < test_frac < 1:
        raise SplitError(f"test_frac={test_frac}: need 0 < test_frac < 1")
    cut = sorted(set(int(c) for c in cutoffs_us))
    gap_us = gap * DAY_US
    usable = len(cut)
    for _ in range(8):  # the test share is of the cutoffs left after the gap: iterate to a fixpoint
        parts = _carve(cut, max(1, round(test_frac * usable)), 0, gap_us)
        if len(cut) - len(parts["gap"]) == usable:
            break
        usable = len(cut) - len(parts["gap"])
    pretest = parts["train"]
    notes: list[str] = []
    eligible: list[int] = []
    need = min_train_cutoffs
    while need >= 1 and not eligible:
        eligible = [e for e in pretest if sum(c + gap_us <= e for c in pretest) >= need]
        if not eligible and need > 1:
            notes.append(f"no evaluation cutoff has {need} training cutoffs {gap} days before it; "
                         "folds train on a single cutoff")
        need -= 1
    if not eligible:
        raise SplitError(
            f"{len(cut)} cutoffs leave {len(pretest)} before the test window, none of them {gap} days after another, "
            "so no cross-validation fold fits; lower --every (more cutoffs), shorten --horizon/--gap, lower --warmup, "
            "lower --test-frac or bring more days of events"
        )
    n = min(folds, len(eligible))
    if n < folds:
        notes.append(f"only {n} fold(s) fit before the test window (asked for {folds}): {len(pretest)} pretest "
                     f"cutoffs, {len(eligible)} of them with training data {gap} days earlier")
    blocks = [list(b) for b in np.array_split(np.asarray(eligible, dtype=np.int64), n)]
    out = tuple(Fold(i, tuple(c for c in pretest if c + gap_us <= int(b[0])), tuple(int(x) for x in b))
                for i, b in enumerate(blocks))
    return CVPlan(tuple(pretest), tuple(parts["test"]), tuple(sorted(parts["gap"])), out, horizon_days, gap, folds,
                  tuple(notes))
