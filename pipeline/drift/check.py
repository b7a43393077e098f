"""One drift check: Evidently's lean metrics on a window against the reference.

:func:`run_check` is a pure function of plain data (it runs in a worker process, see
:mod:`pipeline.drift.monitor`). It computes, with Evidently 0.7's ``Report``:

* ``ValueDrift`` per feature column (method, score, threshold) and its test's status as
  the per-column ``drifted`` flag (the metric itself carries no flag), without the
  per-column chart the stock metric draws (3x faster; see :func:`_evidently`);
* the count and share of drifted columns by ``DriftedColumnsCount``'s rule, from those
  same flags (the metric itself would compute every column again); ``dataset_drift`` is
  Evidently's rule: share >= ``drift_share``;
* ``ValueDrift`` of the risk score against the model's predictions on the reference
  sample: prediction drift.

Methods are Evidently's defaults unless configured: up to 1,000 rows K-S (numerical) /
chi-square (categorical) p-values, drifted when the p-value < 0.05; above, normed
Wasserstein / Jensen-Shannon distances, drifted when >= 0.1.

A window too small, a reference without the columns, or a reference of another model
gives a :class:`Skipped` with the reason (the monitor logs it), never an exception.

:func:`render_report` renders the full ``DataDriftPreset`` HTML (~12 s at 10k x 30; run
it on a slower cadence).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.drift.config import DriftConfig
from pipeline.drift.window import WindowSnapshot

log = logging.getLogger(__name__)
RISK = "risk"  # the prediction column in the data handed to Evidently


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    """The lean metrics of one check (what is stored per run)."""

    time: datetime  # when the check was asked for (the caller's clock)
    window_start: datetime  # event-time bounds of the window
    window_end: datetime
    model_version: str
    rows: int  # window rows checked (after de-duplication / filtering)
    reference_rows: int
    drifted_count: int
    drifted_share: float
    dataset_drift: bool
    prediction: FeatureDrift | None  # None when no reference predictions were given
    features: tuple[FeatureDrift, ...]
    seconds: float  # compute time of the check
    skipped_columns: tuple[str, ...] = ()  # wanted, but not in the reference or window
    report_path: str | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-ready dict (times as ISO text)."""
        d = asdict(self)
        for k in ("time", "window_start", "window_end"):
            d[k] = d[k].isoformat()
        return d


@dataclass(frozen=True)
class Skipped:
    """A check that could not run, and why (logged at WARNING by the monitor)."""

    time: datetime
    model_version: str
    rows: int
    reason: str
    report_path: str | None = field(default=None)


_LEAN: list[Any] = []  # the lean metric class, built on first use (no Evidently import at import time)


def _evidently() -> tuple[Any, ...]:
    """Evidently's classes, and ``ValueDrift`` without its chart: the stock metric builds
    a plotly widget per column (~70% of a 10k x 30 check) that the lean path never shows;
    same calculation, same test, same values."""
    from evidently import DataDefinition, Dataset, Report

    if not _LEAN:
        from abc import ABC

        from evidently.metrics import ValueDrift
        from evidently.metrics.column_statistics import ValueDriftCalculation

        class LeanValueDrift(ValueDrift):
            """``ValueDrift`` whose result carries no chart."""

        class _LeanValueDriftCalculation(ValueDriftCalculation, ABC):  # ABC: not auto-registered
            def _render(self, result: Any, options: Any, color_options: Any) -> list:
                return []

        LeanValueDrift.__calculation_type__ = _LeanValueDriftCalculation
        _LEAN.append(LeanValueDrift)
    return DataDefinition, Dataset, Report, _LEAN[0]


def prepare(
    snap: WindowSnapshot, reference: pd.DataFrame, model_version: str, cfg: DriftConfig, at: datetime,
    active: np.ndarray | None = None,
) -> tuple[pd.DataFrame, np.ndarray, list[str], list[str]] | Skipped:
    """The window's rows to check (deduplicated per user) and the columns both sides have."""
    n = len(snap)
    keep = np.ones(n, bool) if active is None else np.asarray(active, bool)
    if cfg.dedupe_users and snap.users is not None and n:
        last = pd.Series(np.arange(n)).groupby(snap.users, sort=False).last().to_numpy()
        mask = np.zeros(n, bool)
        mask[last] = True
        keep &= mask
    rows = int(keep.sum())
    if rows < cfg.min_rows:
        return Skipped(at, model_version, rows, f"window has {rows:,} rows (after de-duplication), fewer than "
                       f"min_rows={cfg.min_rows:,}: wait for more scores or lower CHURN_DRIFT_MIN_ROWS")
    if len(reference) < cfg.min_rows:
        return Skipped(at, model_version, rows, f"reference sample of model {model_version} has {len(reference):,} "
                       f"rows, fewer than min_rows={cfg.min_rows:,}: log a larger reference with the model")
    wanted = list(snap.columns)
    cols = [c for c in wanted if c in reference.columns]
    missing = [c for c in wanted if c not in reference.columns]
    extra = [c for c in reference.columns if c not in wanted]
    if not cols:
        return Skipped(at, model_version, rows, f"reference of model {model_version} has none of the window's "
                       f"columns (it has {list(reference.columns)[:5]}...): was it logged by another feature set?")
    skipped = missing + extra
    if skipped:
        log.info("drift check of model %s skips column(s) not on both sides: %s", model_version, skipped)
    current = pd.DataFrame(snap.values[keep][:, [wanted.index(c) for c in cols]], columns=cols)
    return current, snap.risk[keep], cols, skipped


def run_check(
    snap: WindowSnapshot, reference: pd.DataFrame, reference_risk: np.ndarray | None, model_version: str,
    cfg: DriftConfig, at: datetime, active: np.ndarray | None = None, report_path: Path | None = None,
) -> DriftResult | Skipped:
    """The lean drift metrics of ``snap`` against ``reference``; with ``report_path`` also
    the full HTML report (and its JSON summary beside it)."""
    t0 = time.perf_counter()
    prep = prepare(snap, reference, model_version, cfg, at, active)
    if isinstance(prep, Skipped):
        log.debug("drift check skipped: %s", prep.reason)  # the monitor logs it where it runs
        return prep
    current, risk, cols, skipped = prep
    ref = reference[cols].astype(np.float64).reset_index(drop=True)
    with_pred = reference_risk is not None and len(reference_risk) == len(reference)
    if reference_risk is not None and not with_pred:
        log.warning("reference predictions (%d) do not match the reference rows (%d): no prediction drift",
                    len(reference_risk), len(reference))
    if with_pred:
        current = current.assign(**{RISK: risk})
        ref = ref.assign(**{RISK: np.asarray(reference_risk, np.float64)})
    DataDefinition, Dataset, Report, ValueDrift = _evidently()
    opts = {"method": cfg.method, "threshold": cfg.threshold}
    metrics = [ValueDrift(column=c, **opts) for c in current.columns]  # features, then risk
    definition = DataDefinition(numerical_columns=list(current.columns))
    with warnings.catch_warnings():  # numpy on constant columns (e.g. a count that is 0 in the window)
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = Report(metrics, include_tests=True).run(
            Dataset.from_pandas(current, data_definition=definition),  # current first (0.7 order)
            Dataset.from_pandas(ref, data_definition=definition),
        )
    out = snapshot.dict()
    flags = {t["metric_config"]["metric_id"]: t["status"] == "FAIL" for t in out["tests"]
             if t.get("id") == "drift"}
    drifts = [FeatureDrift(m["config"]["column"], str(m["config"]["method"]), float(m["value"]),
                           float(m["config"]["threshold"]), bool(flags.get(m["id"], False)))
              for m in out["metrics"] if m["config"]["type"].endswith("ValueDrift")]
    pred = next((d for d in drifts if d.feature == RISK), None) if with_pred else None
    drifts = [d for d in drifts if d.feature != RISK]
    # DriftedColumnsCount's rule on the same per-column tests (running that metric too
    # would compute every column's drift a second time: +0.6 s at 10k x 30)
    count = sum(d.drifted for d in drifts)
    share = count / len(drifts)
    path = None
    if report_path is not None:
        path = str(render_report(current, ref, cols, cfg, report_path))
    return DriftResult(
        time=at, window_start=snap.start, window_end=snap.end, model_version=model_version, rows=len(current),
        reference_rows=len(ref), drifted_count=count, drifted_share=float(share),
        dataset_drift=bool(share >= cfg.drift_share), prediction=pred, features=tuple(drifts),
        seconds=time.perf_counter() - t0, skipped_columns=tuple(skipped), report_path=path,
    )


def render_report(current: pd.DataFrame, reference: pd.DataFrame, columns: Sequence[str], cfg: DriftConfig,
                  path: Path) -> Path:
    """The full ``DataDriftPreset`` report (features and, if present, ``risk``) as HTML."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    cols = [*columns, *([RISK] if RISK in current.columns else [])]
    definition = DataDefinition(numerical_columns=cols)
    snapshot = Report([DataDriftPreset(columns=cols, drift_share=cfg.drift_share, method=cfg.method,
                                       threshold=cfg.threshold)], include_tests=True).run(
        Dataset.from_pandas(current[cols], data_definition=definition),
        Dataset.from_pandas(reference[cols], data_definition=definition),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    snapshot.save_html(str(tmp))
    tmp.replace(path)
    return path
