"""The train pipeline on the default simulation: wall time, peak memory, test metrics.

Simulates 20,000 users x 180 days (quick: 3,000 x 100) into a temporary data directory,
then runs the `train` flow once in a child process (its own Prefect home and temporary
API server, a temporary MLflow SQLite store) so that peak RSS is the pipeline's own.
One run: it is long, and the split by task says where the time goes.

Figures: ``train_seconds`` (the flow, Prefect server already up), ``train_peak_rss_mb``,
``train_<task>_seconds`` for snapshots (replay + labels + oracle + leaky control replay),
fit (all candidates + leaky control), shap, logging (MLflow runs, plots, registry, gate);
``train_prefect_startup_seconds``; test metrics ``xgb_test_auc``, ``logreg_test_auc``,
``rule_test_auc``, ``oracle_test_auc``, ``leaky_test_auc``, ``xgb_test_lift10`` (with
``xgb_test_lift10_ceiling``). Target: train under 5 minutes on a 2-core machine.

Model selection (issue 21): ``selection_regret_auc`` (test ROC-AUC of the best candidate minus
the one cross-validation chose; target <= 0.01), ``champion_test_auc`` (the chosen, refitted,
calibrated model on the held-out test window; no lower than 0.77), ``champion_ece`` (its
expected calibration error on test, equal-count bins; <= 0.02), ``cv_folds`` (>= 3),
``cv_positives`` (churners scored across the folds).

    python -m benchmarks.bench_train [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 300.0
NAMES = {"xgboost": "xgb", "logistic": "logreg", "rule": "rule", "oracle": "oracle", "leaky": "leaky"}


def _simulate(data: Path, users: int, days: int) -> float:
    """The simulation into ``data`` (``log/`` + ``sim/``): a hard-linked copy of the one
    the benchmarks share (``benchmarks/cache.py``; simulated once per code version)."""
    from benchmarks import cache

    t = time.perf_counter()
    cache.linked_copy(cache.simulated(users, days, seed=42, partitions=4, tmp_root=data.parent / "cache"), data)
    return time.perf_counter() - t


def _child(data: str, uri: str, horizon: int, out: str) -> None:
    """Runs in the child process: warm Prefect up, then time the flow."""
    import resource

    from flows.env import local_defaults

    local_defaults()
    from prefect import flow

    @flow(name="bench-warmup")
    def warmup() -> int:
        return 1

    t = time.perf_counter()
    warmup()
    startup = time.perf_counter() - t
    from flows.train import train

    t = time.perf_counter()
    result = train(data_dir=data, horizon_days=horizon, tracking_uri=uri)
    total = time.perf_counter() - t
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    Path(out).write_text(json.dumps({"result": result, "seconds": total, "startup": startup,
                                     "rss_mb": rss_kb / 1024}, default=str))


def run(quick: bool = False) -> dict[str, float]:
    users, days, horizon = (3_000, 100, 14) if quick else (20_000, 180, 30)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root = Path(tmp)
        sim_s = _simulate(root / "data", users, days)
        print(f"the simulation of {users:,} users x {days} days ready in {sim_s:.1f} s (not timed)", flush=True)
        env = dict(os.environ, PREFECT_HOME=str(root / "prefect"), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        (root / "prefect").mkdir()
        out = root / "result.json"
        cmd = [sys.executable, "-m", "benchmarks.bench_train", "--child", str(root / "data"),
               f"sqlite:///{root / 'mlruns' / 'mlflow.db'}", str(horizon), str(out)]
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL if not quick else None)
        res = json.loads(out.read_text())

    r = res["result"]
    figures = {"train_seconds": res["seconds"], "train_peak_rss_mb": res["rss_mb"],
               "train_prefect_startup_seconds": res["startup"]}
    figures |= {f"train_{k}_seconds": v for k, v in r["seconds"].items()}
    rows = {row["name"]: row for row in r["table"]}
    for name, short in NAMES.items():
        if name in rows:
            figures[f"{short}_test_auc"] = rows[name]["test_roc_auc"]
    if "xgboost" in rows:
        figures["xgb_test_lift10"] = rows["xgboost"]["test_lift_10"]
        figures["xgb_test_lift10_ceiling"] = rows["xgboost"]["test_lift_10_ceiling"]
    sel, champ = r["selection"], rows[r["best"]]
    figures |= {"selection_regret_auc": sel["regret_test_auc"], "champion_test_auc": champ["test_roc_auc"],
                "champion_ece": champ["test_ece"], "champion_ece_uncalibrated": champ["test_ece_uncalibrated"],
                "cv_folds": sel["folds"], "cv_positives": sel["positives"]}

    print(f"train pipeline ({users:,} users x {days} days, horizon {horizon} d): "
          f"{res['seconds']:.1f} s (target < {TARGET_SECONDS:.0f} s; Prefect startup {res['startup']:.1f} s extra), "
          f"peak RSS {res['rss_mb']:.0f} MB")
    for k, v in r["seconds"].items():
        print(f"  {k:10s} {v:7.1f} s")
    for name in NAMES:
        if name in rows:
            row = rows[name]
            cv = "" if row["cv_roc_auc"] is None else f"CV {row['cv_roc_auc']:.4f}±{row['cv_roc_auc_std'] or 0:.4f}  "
            print(f"  {name:9s} {cv}test ROC-AUC {row['test_roc_auc']:.4f}  lift@10% {row['test_lift_10']:.2f} "
                  f"(ceiling {row['test_lift_10_ceiling']:.1f})  ECE {row['test_ece']:.4f} {row['calibration'] or ''}")
    print(f"  selection: {sel['message']}")
    print(f"  chosen {r['best']}: test ROC-AUC {champ['test_roc_auc']:.4f} (target >= 0.77), ECE {champ['test_ece']:.4f} "
          f"(target <= 0.02), regret {sel['regret_test_auc']:.4f} (target <= 0.01), {sel['folds']} folds (target >= 3)")
    print(f"  gate: {r['gate']['decision'] if r['gate'] else '-'}; best {r['best']}")
    return figures


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:4], int(sys.argv[4]), sys.argv[5])
    else:
        for k, v in run(quick="--quick" in sys.argv).items():
            print(f"{k:34s} {v:,.3f}")
