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
            "lower --every (more cutoffs), shorten --horizon, or simulate more days"
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
