"""False alarms of the stream's drift checks on simulations with no drift at all.

For each seed: simulate ``--users`` x ``--days`` with no scenario, train the logistic
candidate as ``train`` does (its reference: 5,000 training rows), stream the whole log
through one worker with drift checks on (``pipeline.testing.drift.stream_checks``), and
count checks at Warning or worse. Both window modes are measured: ``day_snapshot`` (the
default: every active user at each midnight, like the reference) and ``scored`` (the
users the stream scores, as of their latest event).

    python -m benchmarks.drift_false_alarms [--seeds 1 2 3] [--users 3000] [--days 100]
    python -m benchmarks.drift_false_alarms --scenario device_shift --drift-day 70

Takes ~1 min per seed and mode on one core. Results: docs/drift.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.drift_false_alarms")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--users", type=int, default=3_000)
    ap.add_argument("--days", type=int, default=100)
    ap.add_argument("--modes", nargs="+", default=["day_snapshot", "scored"])
    ap.add_argument("--scenario", default=None)
    ap.add_argument("--drift-day", type=int, default=None)
    args = ap.parse_args(argv)

    from pipeline.testing.drift import stream_checks

    totals: dict[str, Counter] = {m: Counter() for m in args.modes}
    for seed in args.seeds:
        for mode in args.modes:
            work = Path(tempfile.mkdtemp(prefix="churn-drift-fa-"))
            t = time.perf_counter()
            try:
                checks = stream_checks(work, args.scenario, args.drift_day, users=args.users, days=args.days,
                                       seed=seed, observe=mode, train_end_day=args.drift_day)  # fmt: skip
            finally:
                shutil.rmtree(work, ignore_errors=True)
            before = [c for c in checks if args.drift_day is None or c.day < args.drift_day]
            after = [c for c in checks if args.drift_day is not None and c.day >= args.drift_day]
            alarms = [c for c in before if c.level != "Healthy"]
            totals[mode].update(checks=len(before), alarms=len(alarms),
                                critical=sum(c.level == "Critical" for c in before))
            top = Counter(f for c in alarms for f in c.drifted).most_common(4)
            mean_share = sum(c.drifted_share for c in before) / max(1, len(before))
            print(f"seed {seed} {mode:12s}: {len(alarms)}/{len(before)} checks Warning+ "
                  f"({sum(c.level == 'Critical' for c in before)} Critical), mean drifted share {mean_share:.1%}, "
                  f"most drifted in alarms {top} [{time.perf_counter() - t:.0f} s]", flush=True)
            if after:
                first = next((c for c in after if c.level != "Healthy"), None)
                print(f"    after day {args.drift_day}: {sum(c.level != 'Healthy' for c in after)}/{len(after)} Warning+, "
                      f"{sum(c.level == 'Critical' for c in after)} Critical; first alarm on day "
                      f"{None if first is None else first.day}", flush=True)
    for mode, c in totals.items():
        rate = c["alarms"] / max(1, c["checks"])
        print(f"{mode:12s}: false-alarm rate {c['alarms']}/{c['checks']} = {rate:.1%} of checks "
              f"({c['critical']} Critical) over seeds {args.seeds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
