"""Evaluate the pipeline on the example sources: the table in docs/import.md, reproducibly.

For each example source, in a temporary directory: generate the sample (seeded), `churn
import` it with its mapping, run the train flow (no registration, a temporary MLflow
SQLite store) and, on the flow's held-out test window, report

* the champion the flow chose (by cross-validation) and its test ROC-AUC, with the CV table;
* the best candidate's test ROC-AUC and the selection regret (best minus chosen);
* the baseline issue 21 names: a plain logistic regression (sklearn, standardised
  features, C=1) on the per-action 30-day counts only (``act_<a>_30d``; for a source
  without declared actions, the built-in 30-day event counts), fitted on the same
  pre-test rows the flow trains on and scored on the same test rows;
* the leaky control (features computed at cutoff + horizon, so they see the label
  window): it must score >= 0.97, or the label is not learnable from the log.

    .venv/bin/python docs/examples/evaluate_sources.py            # full: default sample sizes
    .venv/bin/python docs/examples/evaluate_sources.py --quick    # small samples, no music
    .venv/bin/python docs/examples/evaluate_sources.py --no-write # print only
    .venv/bin/python docs/examples/evaluate_sources.py --seeds 3  # and each generator with 2 more seeds

The full run writes the table into docs/import.md between the ``sources-table`` markers.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

DOC = ROOT / "docs" / "import.md"
START, END = "<!-- sources-table:start -->", "<!-- sources-table:end -->"
LEAKY_MIN = 0.97


@dataclass(frozen=True)
class Source:
    """One example source: how to write its sample file, its mapping, the train parameters."""

    name: str
    mapping: str
    generator: str | None  # docs/examples/<generator>.py with generate(<size_arg>=, seed=); None: shipped file
    size_arg: str = ""
    size: int = 0
    seed: int = 0
    shipped: str | None = None  # a committed sample file (already generated, seeded)
    horizon_days: int = 30
    label: str = ""

    def describe(self) -> str:
        if self.shipped:
            return f"{self.label} (shipped sample)"
        return f"{self.label} (seed {self.seed}, {self.size:,} {self.size_arg})"


FULL: tuple[Source, ...] = (
    Source("saas", "saas_mapping.yaml", "make_saas_sample", "accounts", 3000, 11, label="SaaS"),
    Source("shop", "shop_mapping.yaml", "make_shop_sample", "customers", 3000, 5, label="e-commerce"),
    Source("music", "music_mapping.yaml", None, shipped="music_events.csv.gz", horizon_days=14, label="music"),
)
QUICK: tuple[Source, ...] = (
    Source("saas", "saas_mapping.yaml", "make_saas_sample", "accounts", 1000, 11, label="SaaS"),
    Source("shop", "shop_mapping.yaml", "make_shop_sample", "customers", 1000, 5, label="e-commerce"),
)


@dataclass
class Result:
    source: Source
    features: int
    declared_actions: list[str]
    pretest_rows: int
    test_rows: int
    test_churners: int
    chosen: str
    chosen_auc: float
    best: str
    best_auc: float
    baseline_auc: float
    baseline_features: list[str]
    versus_baseline: dict[str, float]  # champion - plain logistic: diff, ci_low, ci_high (paired row bootstrap)
    leaky_auc: float | None
    candidates: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> cv mean/std, test AUC
    cv_table: list[dict[str, Any]] = field(default_factory=list)
    selection: str = ""
    folds: int = 0  # rolling-origin folds the selection judged by
    fold_churners: int = 0  # churners scored across them
    within_noise: bool = False
    calibration: str = ""
    seconds: float = 0.0

    @property
    def actions(self) -> int:
        return len(self.declared_actions)

    @property
    def regret(self) -> float:
        return self.best_auc - self.chosen_auc

    @property
    def beats_baseline(self) -> bool:
        return self.chosen_auc > self.baseline_auc


def _load_generator(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def write_sample(src: Source, out_dir: Path) -> Path:
    """The source's event file: generated with its seed (the generator's own writer), or the shipped one."""
    if src.shipped:
        return HERE / src.shipped
    mod = _load_generator(src.generator or "")
    path = out_dir / f"{src.name}_events.csv.gz"
    return mod.write(mod.generate(**{src.size_arg: src.size, "seed": src.seed}), path)


def import_sample(path: Path, mapping: Path, data_dir: Path) -> dict[str, Any]:
    from typer.testing import CliRunner

    from churn.cli.app import app

    r = CliRunner().invoke(app, ["--data-dir", str(data_dir), "--partitions", "2", "import", str(path),
                                 "--mapping", str(mapping), "--json"])
    if r.exit_code != 0:
        raise RuntimeError(f"churn import {path} failed (exit {r.exit_code}): {r.output[-2000:]}")
    return json.loads(r.stdout)


def baseline_columns(ds) -> list[str]:
    """Per-action 30-day counts; for a source without declared actions, the built-in 30-day event counts."""
    from pipeline.features.registry import FEATURES

    acts = [f"act_{a}_30d" for a in ds.spec.action_names]
    if acts:
        return [c for c in acts if c in ds.features]
    counts = {f.name for f in FEATURES if f.window_days == 30 and f.kind == "count"}
    return [c for c in ds.features if c in counts]


def plain_logistic_scores(ds, columns: Sequence[str]) -> np.ndarray:
    """sklearn LogisticRegression (C=1) on standardised ``columns``: fit on pre-test rows, scores of the test rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = ds.part("train"), ds.part("test")
    x_tr = train[list(columns)].to_numpy(dtype=np.float64)
    x_te = test[list(columns)].to_numpy(dtype=np.float64)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    model.fit(np.nan_to_num(x_tr), train["label"].to_numpy())
    return model.predict_proba(np.nan_to_num(x_te))[:, 1]


def champion_scores(ds, chosen: str, seed: int, expect_auc: float) -> np.ndarray:
    """The flow's champion again (same library calls, seed and rows: deterministic), for paired comparisons.

    Refuses to go on if its test ROC-AUC is not the flow's: then the rows or the model differ."""
    from sklearn.metrics import roc_auc_score

    from pipeline.config import PROJECT_ROOT
    from pipeline.training.compare import refit_and_calibrate
    from pipeline.training.cv import cross_validate
    from pipeline.training.report import feature_directions
    from pipeline.training.specs import load_specs

    spec = load_specs(PROJECT_ROOT / "models", [chosen])[0]
    dirs = feature_directions(ds, None)
    ev = refit_and_calibrate(spec, ds, cross_validate(spec, ds, seed, dirs), seed, dirs)
    auc = float(roc_auc_score(ds.part("test")["label"].to_numpy(), ev.test_scores))
    if abs(auc - expect_auc) > 1e-6:
        raise RuntimeError(f"re-fitting {chosen} gave test ROC-AUC {auc:.6f}, the flow {expect_auc:.6f}; "
                           "the comparison would not be on the flow's champion")
    return ev.test_scores


def rebuild_dataset(data_dir: Path, horizon_days: int, every_days: int, folds: int, test_frac: float):
    """The flow's snapshots again (deterministic from the log and the same parameters)."""
    from pipeline.log import open_log
    from pipeline.training.data import build_dataset

    log = open_log(data_dir / "log", "events")
    try:
        return build_dataset(log, horizon_days, every_days, test_frac=test_frac, folds=folds)
    finally:
        log.close()


def evaluate(src: Source, work: Path, seed: int = 42, every_days: int = 7, folds: int = 4,
             test_frac: float = 0.2, candidates: list[str] | None = None) -> Result:
    """Generate, import, train (flow, no registration) and compare on the flow's test window."""
    from sklearn.metrics import roc_auc_score

    from flows.train import train
    from pipeline.evaluation import paired_auc_difference

    t0 = time.perf_counter()
    data = work / src.name / "data"
    data.mkdir(parents=True)
    path = write_sample(src, work / src.name)
    import_sample(path, HERE / src.mapping, data)
    uri = f"sqlite:///{work / src.name / 'mlflow.db'}"
    out = train(data_dir=str(data), horizon_days=src.horizon_days, every_days=every_days, folds=folds,
                test_frac=test_frac, seed=seed, candidates=candidates, shap_sample=200, leaky_control=True,
                register_model=False, tracking_uri=uri)
    ds = rebuild_dataset(data, src.horizon_days, every_days, folds, test_frac)
    rows = {r["name"]: r for r in out["table"]}
    test = ds.part("test")
    flow_test = out["split"]["parts"]["test"]
    if (len(test), int(test["label"].sum())) != (flow_test["rows"], flow_test["positives"]) \
            or ds.feature_set_version != out["feature_set_version"]:
        raise RuntimeError(f"{src.name}: the rebuilt snapshots differ from the flow's ({len(test)} test rows, "
                           f"flow {flow_test['rows']})")
    cands = {n: r for n, r in rows.items() if r["role"] == "candidate"}
    best = max(cands, key=lambda n: cands[n]["test_roc_auc"])
    chosen = out["best"]
    cols = baseline_columns(ds)
    y = test["label"].to_numpy()
    plain = plain_logistic_scores(ds, cols)
    champ = champion_scores(ds, chosen, seed, float(cands[chosen]["test_roc_auc"]))
    versus = paired_auc_difference(y, champ, plain, n_boot=500, seed=seed)
    return Result(
        source=src, features=len(ds.features), declared_actions=list(ds.spec.action_names), pretest_rows=len(ds.part("train")),
        test_rows=len(test), test_churners=int(test["label"].sum()), chosen=chosen,
        chosen_auc=float(cands[chosen]["test_roc_auc"]), best=best, best_auc=float(cands[best]["test_roc_auc"]),
        baseline_auc=float(roc_auc_score(y, plain)), baseline_features=cols,
        versus_baseline={k: float(v) for k, v in versus.items()},
        leaky_auc=float(rows["leaky"]["test_roc_auc"]) if "leaky" in rows else None,
        candidates={n: {"cv_roc_auc": r["cv_roc_auc"], "cv_roc_auc_std": r["cv_roc_auc_std"],
                        "cv_folds": r["cv_folds"], "test_roc_auc": r["test_roc_auc"]} for n, r in cands.items()},
        cv_table=out["cv_table"], selection=out["selection"]["message"], folds=int(out["selection"]["folds"]),
        fold_churners=int(out["selection"]["positives"]), within_noise=bool(out["selection"]["within_noise"]),
        calibration=str(out["calibration"]["method"]), seconds=time.perf_counter() - t0)


def _auc(v: float | None) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.3f}"


def _diff(d: dict[str, float]) -> str:
    return f"{d['diff']:+.3f} ({d['ci_low']:+.3f} .. {d['ci_high']:+.3f})"


def markdown_table(results: Sequence[Result]) -> str:
    head = ("| source | features (all / action) | pre-test rows | test rows / churners | CV folds (churners scored) | candidates: CV ROC-AUC "
            "(mean ± sd) → test | champion (chosen by CV) | best candidate on test | selection regret | plain "
            "logistic on per-action 30-day counts | champion − plain (95 % CI) | leaky control |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in results:
        cands = "; ".join(f"{n} {_auc(c['cv_roc_auc'])} ± {_auc(c['cv_roc_auc_std'])} → {_auc(c['test_roc_auc'])}"
                          for n, c in sorted(r.candidates.items(), key=lambda kv: -(kv[1]["cv_roc_auc"] or 0.0)))
        lines.append(f"| {r.source.describe()} | {r.features} / {r.actions} | {r.pretest_rows:,} | "
                     f"{r.test_rows:,} / {r.test_churners:,} | {r.folds} ({r.fold_churners:,}) | {cands} | "
                     f"{r.chosen} {r.chosen_auc:.3f}{' (within noise)' if r.within_noise else ''} | "
                     f"{r.best} {r.best_auc:.3f} | {r.regret:.3f} | {r.baseline_auc:.3f} "
                     f"({len(r.baseline_features)} features) | {_diff(r.versus_baseline)} | "
                     f"{_auc(r.leaky_auc)} |")
    return head + "\n".join(lines) + "\n"


def seeds_table(results: Sequence[Result]) -> str:
    """One line per (source, seed): is the comparison a property of the generator or of one draw?"""
    head = ("| source | seed | champion (chosen by CV) | best candidate on test | plain logistic | champion − plain "
            "(95 % CI) | leaky control |\n|---|---|---|---|---|---|---|\n")
    return head + "\n".join(
        f"| {r.source.label} | {r.source.seed} | {r.chosen} {r.chosen_auc:.3f} | {r.best} {r.best_auc:.3f} | "
        f"{r.baseline_auc:.3f} | {_diff(r.versus_baseline)} | {_auc(r.leaky_auc)} |" for r in results) + "\n"


def other_seeds(sources: Sequence[Source], extra: int) -> list[Source]:
    """The generated sources again with the next ``extra`` seeds (shipped samples have one draw)."""
    return [replace(s, seed=s.seed + k) for k in range(1, extra + 1) for s in sources if s.generator]


def write_doc(table: str, note: str, doc: Path = DOC) -> None:
    """Replace the text between the sources-table markers of ``doc``."""
    text = doc.read_text()
    if START not in text or END not in text:
        raise RuntimeError(f"{doc} lacks the markers {START} / {END}; add them where the table belongs")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    doc.write_text(f"{before}{START}\n{table}\n{note}\n{END}{after}")


def run(sources: Sequence[Source], work: Path, **kw: Any) -> list[Result]:
    out = []
    for src in sources:
        r = evaluate(src, work / f"{src.name}-{src.seed}", **kw)
        print(f"{src.name}: chosen {r.chosen} {r.chosen_auc:.4f}, best {r.best} {r.best_auc:.4f}, plain logistic "
              f"{r.baseline_auc:.4f}, leaky {_auc(r.leaky_auc)} ({r.seconds:.0f} s)\n  {r.selection}", flush=True)
        out.append(r)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small samples (1,000 accounts), SaaS and shop only")
    p.add_argument("--no-write", action="store_true", help="do not write docs/import.md")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    p.add_argument("--seeds", type=int, default=1, metavar="K",
                   help="also run each generated source with its next K-1 seeds (a second table)")
    a = p.parse_args(argv)
    for k, v in {"MLFLOW_DISABLE_TELEMETRY": "true", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                 "DO_NOT_TRACK": "true", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}.items():
        os.environ.setdefault(k, v)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="churn-eval-") as tmp:
        sources = QUICK if a.quick else FULL
        results = run(sources, Path(tmp))
        more = run(other_seeds(sources, a.seeds - 1), Path(tmp)) if a.seeds > 1 else []
    table = markdown_table(results)
    if more:
        firsts = [r for r in results if r.source.generator]
        table += ("\nThe generated sources with other seeds (same sizes, same flow):\n\n"
                  + seeds_table(sorted([*firsts, *more], key=lambda r: (r.source.name, r.source.seed))))
    print(table)
    load = os.getloadavg()[0]
    note = (f"Test ROC-AUC on each source's held-out test window (the last 20 % of the cutoffs; every model is fitted "
            "on the rows before it). \"within noise\": the flow's selection could not tell the candidates apart "
            "(one fold, or a lead under two standard errors). The CI of champion − plain is a paired bootstrap "
            "over test rows (500 resamples); rows of one user at several cutoffs are not independent, so it is "
            "somewhat too narrow. A source without declared actions (music) gets the built-in 30-day event "
            f"counts as its plain baseline. Written by `python docs/examples/evaluate_sources.py` in "
            f"{time.perf_counter() - t0:.0f} s (2 shared cores, load average {load:.1f}).")
    if a.json:
        a.json.write_text(json.dumps([{k: v for k, v in r.__dict__.items() if k != "source"}
                                      | {"source": r.source.name, "seed": r.source.seed}
                                      for r in [*results, *more]], indent=1, default=str))
    if not a.quick and not a.no_write:
        write_doc(table, note)
        print(f"wrote the table into {DOC}")
    bad = [f"{r.source.name} (seed {r.source.seed})" for r in [*results, *more] if r.leaky_auc is not None and r.leaky_auc < LEAKY_MIN]
    if bad:
        print(f"leaky control below {LEAKY_MIN} on {', '.join(bad)}: the label may not be learnable", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
