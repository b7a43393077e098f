"""A store-writing worker process for the concurrency test (run as a script).

python store_workers.py URL SCHEMA|- WORKER BATCHES SIZE
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from pipeline.store import Store, StreamMetric

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def main(url: str, schema: str, worker: str, batches: int, size: int) -> None:
    store = Store(url, schema=None if schema == "-" else schema)
    store.set_assignment(worker, [int(worker[1:])], generation=1)
    for b in range(batches):
        rows = [
            {
                "user_id": f"{worker}-u{i}",
                "risk": ((i * 31 + b * 7) % 100) / 100,
                "model_version": "1",
                "features_time": T0 + timedelta(minutes=b),
            }
            for i in range(size)
        ]
        res = store.upsert_scores(rows)
        assert res.scores == size, res
        store.record_metrics(
            [StreamMetric(time=T0 + timedelta(minutes=b), worker=worker, partition=0, lag=b)]
        )
        assert store.heartbeat(worker) == (int(worker[1:]),)
        store.current_scores(top_k=10)  # a reader in the middle of it all
    store.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
