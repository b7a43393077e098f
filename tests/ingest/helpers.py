"""Shared helpers for the import tests: a base mapping and small source files."""

from __future__ import annotations

import copy
import csv
import gzip
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from pipeline.clock import FakeClock
from pipeline.ingest import Ledger, parse_mapping, run_import
from pipeline.log import open_log

BASE: dict[str, Any] = {
    "user_id": "uid",
    "timestamp": {"column": "t", "epoch_unit": "s"},
    "event_type": {
        "column": "kind",
        "values": {"play": "session", "pay": "payment", "quit": "cancel", "help": "support_ticket"},
        "unmapped": "drop",
    },
    "fields": {
        "session": {"watch_minutes": {"column": "minutes", "default": 0}, "device": {"const": "web"}},
        "payment": {"amount": "amount", "plan": {"column": "plan", "values": {"b": "basic", "p": "premium"}}},
        "cancel": {"reason": {"const": "voluntary"}},
        "support_ticket": {"category": {"const": "help"}},
    },
    "signup": {"synthesize": "first_event", "plan": {"const": "basic"}},
    "churn": {"definition": "cancel"},
    "max_rejected_share": 0.5,
}
HEADER = ["uid", "t", "kind", "minutes", "amount", "plan"]
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def mapping_dict(**changes: Any) -> dict[str, Any]:
    m = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = m
        *parents, last = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return m


DELETE = object()


def mapping(**changes: Any):
    return parse_mapping(mapping_dict(**changes), "test")


def write_mapping(path: Path, **changes: Any) -> Path:
    path.write_text(yaml.safe_dump(mapping_dict(**changes), sort_keys=False))
    return path


def rows_to_csv(rows: list[dict[str, Any]], path: Path, header: list[str] = HEADER) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    data = buf.getvalue().encode()
    if path.name.endswith(".gz"):
        with gzip.GzipFile(path, "wb", mtime=0) as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def sample_rows(users: int = 5, days: int = 20) -> list[dict[str, Any]]:
    """Deterministic small log: each user plays daily, pays on day 1, user 0 quits."""
    rows = []
    for d in range(days):
        for u in range(users):
            if u == 0 and d > 10:
                continue
            rows.append({"uid": f"u{u}", "t": T0 + d * 86400 + 3600 * (u + 1), "kind": "play", "minutes": 10 + u})
            if d == 1:
                rows.append({"uid": f"u{u}", "t": T0 + d * 86400 + 7200 * (u + 1), "kind": "pay", "amount": 7.99,
                             "plan": "b"})
            if d == 3 and u == 2:
                rows.append({"uid": f"u{u}", "t": T0 + d * 86400 + 100, "kind": "nav"})  # dropped by rule
    rows.append({"uid": "u0", "t": T0 + 11 * 86400, "kind": "quit"})
    return rows


# "now" for imports: after every fixture's dates (rows later than now + 1 day are rejected as future)
IMPORT_NOW = datetime(2027, 1, 1, tzinfo=UTC)


class Env:
    """A file log + ledger under ``tmp`` and a fixed clock."""

    def __init__(self, tmp: Path, partitions: int = 2, topic: str = "events") -> None:
        self.root = tmp
        self.log = open_log(tmp / "log", topic, partitions)
        self.ledger = Ledger(tmp / "import" / topic)
        self.clock = FakeClock(IMPORT_NOW)

    def run(self, paths, m, **kw):
        return run_import([Path(p) for p in paths], m, self.log, self.ledger, self.clock, **kw)

    def events(self) -> list[dict[str, Any]]:
        import json

        out = []
        for p in range(self.log.num_partitions):
            values, _ = self.log.fetch_values(p, 0, max_records=1_000_000)
            out += [json.loads(v) | {"_partition": p} for v in values]
        return out

    def dead_letters(self) -> list[dict[str, Any]]:
        import json

        from pipeline.log.deadletter import dead_letter_log

        dlq = dead_letter_log(self.log)
        try:
            out = []
            for p in range(dlq.num_partitions):
                values, _ = dlq.fetch_values(p, 0, max_records=1_000_000)
                out += [json.loads(v) for v in values]
            return out
        finally:
            dlq.close()

    def close(self) -> None:
        self.log.close()
