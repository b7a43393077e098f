"""One drift check: Evidently's lean metrics on a window against the reference.

:func:`run_check` is a pure function of plain data (it runs in a worker process, see
:mod:`pipeline.drift.monitor`). It computes, with Evidently 0.7's ``Report``:

* ``ValueDrift`` per feature column (method, score, threshold) and its test's status as
  the per-column ``drifted`` flag (the metric itself carries no flag), without the
  per-column chart the stock metric draws nor the data behind it (see :func:`_evidently`);
* the count and share of drifted columns by ``DriftedColumnsCount``'s rule, from those
  same flags (the metric itself would compute every column again); ``dataset_drift`` is
  Evidently's rule: share >= ``drift_share``;
* ``ValueDrift`` of the risk score against the model's predictions on the reference
  sample: prediction drift.

The reference's Evidently Dataset is built once per reference (kept by content and model
version in the process that runs the checks, :func:`_reference_dataset`), and Datasets
skip the summary stats no lean metric reads: ~5x less CPU per check than stock
Evidently, with the same results (``tests/drift/test_check_cache.py``).

Methods are Evidently's defaults unless configured: up to 1,000 rows K-S (numerical) /
chi-square (categorical) p-values, drifted when the p-value < 0.05; above, normed
Wasserstein / Jensen-Shannon distances, drifted when >= 0.1.

A window too small, a reference without the columns, or a reference of another model
gives a :class:`Skipped` with the reason (the monitor logs it), never an exception.

:func:`render_report` renders the full ``DataDriftPreset`` HTML (~12 s at 10k x 30; run
it on a slower cadence).
"""

from __future__ import annotations

import hashlib
import logging
import time
import warnings
from collections import OrderedDict
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


_LEAN: list[Any] = []  # the lean metric and Dataset classes, built on first use (no Evidently import at import time)


def _evidently() -> tuple[Any, ...]:
    """Evidently's classes, and ``ValueDrift`` reduced to its statistical test.

    The stock metric runs ``get_one_column_drift``, which besides the test computes the
    data of the per-column chart (a copy of the whole current frame binned over its
    index, histograms, distributions, correlations) and draws it with plotly: most of a
    check, all of it thrown away by the lean path. ``LeanValueDrift`` is a subclass with
    its own calculation (registered nowhere else) whose ``calculate`` is the stock one
    minus the chart: the same stattest and threshold resolution, the same cleaning of
    +-inf/NaN, the same test function, the same resolved parameters and the same
    ``drift`` test, so the same values (``tests/drift/test_check_cache.py`` compares it
    with the stock metric)."""
    from evidently import DataDefinition, Report

    if not _LEAN:
        from abc import ABC

        from evidently.core.datasets import (
            ColumnStats,
            GeneralColumnStats,
            PandasDataset,
            StatCountValue,
        )
        from evidently.core.metric_types import MetricTestResult
        from evidently.legacy.calculations.stattests import get_stattest
        from evidently.legacy.core import ColumnType
        from evidently.legacy.options.data_drift import DataDriftOptions
        from evidently.legacy.tests.base_test import TestStatus
        from evidently.metrics import ValueDrift
        from evidently.metrics.column_statistics import (
            ValueDriftBoundTest,
            ValueDriftCalculation,
            ValueDriftTest,
        )

        class LeanValueDrift(ValueDrift):
            """``ValueDrift`` without its chart (and without computing the chart's data)."""

        class _LeanValueDriftCalculation(ValueDriftCalculation, ABC):  # ABC: not auto-registered
            def calculate(self, context: Any, current_data: Any, reference_data: Any) -> Any:
                # ValueDriftCalculation.calculate + the test part of get_one_column_drift (0.7.x)
                column = self.metric.column
                column_type = current_data.column(column).type
                if reference_data is None:
                    raise ValueError("Reference data is required for Value Drift")
                if column_type not in (ColumnType.Numerical, ColumnType.Categorical, ColumnType.Text):
                    raise ValueError(f"Cannot calculate drift metric for column '{column}' with type {column_type}")
                options = DataDriftOptions(all_features_stattest=self.metric.method,
                                           all_features_threshold=self.metric.threshold, nbinsx=self.metric.nbinsx)
                stattest = options.get_feature_stattest_func(column, column_type.value)
                threshold = options.get_threshold(column, column_type.value)
                ref = reference_data.as_dataframe()[column].replace([-np.inf, np.inf], np.nan).dropna()
                if ref.empty:
                    raise ValueError(f"An empty column '{column}' was provided for drift calculation in the "
                                     "reference dataset.")
                cur = current_data.as_dataframe()[column].replace([-np.inf, np.inf], np.nan).dropna()
                if cur.empty:
                    raise ValueError(f"An empty column '{column}' was provided for drift calculation in the "
                                     "current dataset.")
                if column_type == ColumnType.Numerical and not (pd.api.types.is_numeric_dtype(ref)
                                                                and pd.api.types.is_numeric_dtype(cur)):
                    raise ValueError(f"Column '{column}' should contain numerical values only.")
                test = get_stattest(ref, cur, column_type, stattest)
                drift = test(ref, cur, column_type, threshold)
                if self.metric.method is None:  # only if it was auto-resolved
                    self.resolve_parameter("method", test.display_name)
                if self.metric.threshold is None:
                    self.resolve_parameter("threshold", drift.actual_threshold)
                result = self.result(drift.drift_score)
                result.widget = []
                if self.metric.tests is None and context.configuration.include_tests:
                    result.set_tests([MetricTestResult(
                        id="drift",
                        name=f"Value Drift for column {self.metric.column}",
                        description=f"Drift score is {drift.drift_score:0.2f}. The drift detection method is "
                                    f"{test.display_name}. The drift threshold is {drift.actual_threshold:0.2f}.",
                        status=TestStatus.FAIL if drift.drifted else TestStatus.SUCCESS,
                        metric_config=self.to_metric_config(),
                        test_config={},
                        bound_test=ValueDriftBoundTest(test=ValueDriftTest(),
                                                       metric_fingerprint=self.to_metric().metric_id),
                    )])
                return result

            def _render(self, result: Any, options: Any, color_options: Any) -> list:
                return []

        LeanValueDrift.__calculation_type__ = _LeanValueDriftCalculation

        class CheckDataset(PandasDataset):
            """``PandasDataset`` without per-column summary stats (min/max/quantiles/...,
            ~70% of building a Dataset): only ``DatasetStats`` metrics read them, and the
            lean report has none. Same data, same definition."""

            def _collect_stats(self, column_type: Any, data: pd.Series) -> Any:
                return ColumnStats(GeneralColumnStats(missing_values=StatCountValue(0, 0)), None, None)

        _LEAN.extend((LeanValueDrift, CheckDataset))
    return DataDefinition, _LEAN[1], Report, _LEAN[0]


# Evidently reference Datasets by content (the newest few): building one copies the frame
# and computes per-column stats, the same work on every check of a model version.
# Keyed by a hash of the data itself (not the object: with the process executor every
# check gets a fresh unpickled copy), so a new model/reference is a miss, never a stale hit.
_REF_CACHE: OrderedDict[str, Any] = OrderedDict()
_REF_CACHE_SIZE = 2  # the champion's reference, and the previous one right after a switch


def _fingerprint(frame: pd.DataFrame, model_version: str) -> str:
    h = hashlib.blake2b(digest_size=20)
    h.update(repr((model_version, frame.shape, list(frame.columns), [str(t) for t in frame.dtypes])).encode())
    h.update(np.ascontiguousarray(frame.to_numpy()).tobytes())
    return h.hexdigest()


def _reference_dataset(ref: pd.DataFrame, model_version: str, definition: Any, Dataset: Any) -> Any:
    """The Evidently Dataset of ``ref`` (all-float64 columns), built once per content."""
    key = _fingerprint(ref, model_version)
    ds = _REF_CACHE.get(key)
    if ds is None:
        ds = Dataset(ref, definition)
        _REF_CACHE[key] = ds
        while len(_REF_CACHE) > _REF_CACHE_SIZE:
            _REF_CACHE.popitem(last=False)
    else:
        _REF_CACHE.move_to_end(key)
    return ds


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
        # day snapshots hold every active user at a midnight: on a population this small, waiting
        # does not fill the window (a source's own data can be a few hundred users)
        remedy = (f"the window is the active users at an event-time midnight, and waiting does not grow a "
                  f"population this small: to check it, set CHURN_DRIFT_MIN_ROWS <= {rows:,} (a noisier check)"
                  if cfg.observe == "day_snapshot" else "wait for more scores or lower CHURN_DRIFT_MIN_ROWS")
        return Skipped(at, model_version, rows, f"window has {rows:,} rows (after de-duplication), fewer than "
                       f"min_rows={cfg.min_rows:,}: {remedy}")
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
            Dataset(current, definition),  # current first (0.7 order)
            _reference_dataset(ref, model_version, definition, Dataset),
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
