"""A checkpoint writer process for the fencing race test (run as a script).

python state_pg_writer.py URL SCHEMA NAME SECONDS OUT_JSON

Loops on partition 0 like a worker that never renews its lease and pauses between
writes: take the lease when free or expired, restore ``n`` from the checkpoint, then
write n+1, n+2, ... until a write is refused (fenced), then start over. Prints nothing;
writes ``{"accepted": ..., "refused": ..., "takeovers": ..., "torn": ...}`` to OUT_JSON.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from pipeline.errors import FencedError
from pipeline.stream.checkpoint import CheckpointMeta
from pipeline.stream.state_pg import PgStateBackend

TTL_S = 0.05


def main(url: str, schema: str, name: str, seconds: float, out: str) -> None:
    state = PgStateBackend(url, "events", "g", schema=schema, owner=name, lease_ttl_s=TTL_S)
    lease = state.lease(0)
    rng = random.Random(name)
    counts = {"accepted": 0, "refused": 0, "takeovers": 0, "torn": 0}
    n = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not lease.held:
            if not lease.try_acquire():
                time.sleep(rng.uniform(0, 0.005))
                continue
            counts["takeovers"] += 1
            ck = state.read(0)
            n = 0 if ck is None else ck.meta.next_offset
            if ck is not None and ck.state != f"{n}".encode():
                counts["torn"] += 1  # offsets and state from different writes
        time.sleep(rng.uniform(0, 0.02))  # a pause (slow batch, GC) that may outlive the lease
        meta = CheckpointMeta("events", "g", 0, n + 1, n + 1, f"{name}-{n + 1}")
        try:
            state.write(meta, f"{n + 1}".encode(), dedup=name.encode())
        except FencedError:
            counts["refused"] += 1
            continue
        n += 1
        counts["accepted"] += 1
    lease.release()
    state.close()
    Path(out).write_text(json.dumps(counts))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5])
