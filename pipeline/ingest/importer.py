"""`churn import`: foreign event files -> the partition log, exactly once, in event-time order.

1. Hash each file (its identity) and look the import up in the ledger: a finished import
   is not repeated, a file another import already wrote is skipped, an interrupted one
   is resumed.
2. Stream every file in batches through the mapping (:mod:`pipeline.ingest.transform`):
   valid events are kept compactly (encoded JSON plus a few columns), rejected rows are
   counted by reason, unmapped types dropped by the mapping's rule are counted.
3. Refuse (write nothing) if the rejected share exceeds the threshold.
4. Synthesize what the source lacks (:mod:`pipeline.ingest.synth`): signups at a user's
   first row, inactivity churn.
5. Sort by (partition, event time) - so each user's events are appended in event-time
   order, and each partition is in time order as the feature engine's lateness rule
   expects - and append per partition in chunks, skipping event ids already in the log
   when resuming.
6. Dead-letter the rejected rows (file, row, reason), record the import as done.

Ordering guarantee: within one ``churn import`` run (all its files together) every
user's events are appended in event-time order. Across runs, a later run appends after
everything already in the log, so import a source's files in time order (or all in one
run); events older than the partition's watermark by more than the engine's lateness
(24 h) are then counted as late by the feature engine, not applied.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from pipeline.clock import Clock
from pipeline.events import EVENT_TYPES
from pipeline.features.timebase import EPOCH, from_us
from pipeline.ingest.errors import RejectedShareError
from pipeline.ingest.ledger import Ledger, ids_in_log
from pipeline.ingest.mapping import SourceMapping
from pipeline.ingest.profile import source_profile
from pipeline.ingest.readers import file_key, iter_batches
from pipeline.ingest.synth import synthesize
from pipeline.ingest.transform import MappedBatch, Rejected, map_batch
from pipeline.log.base import PartitionLog
from pipeline.log.deadletter import DeadLetter, dead_letter_log
from pipeline.log.partitioner import partition_for_many

CHUNK = 10_000
TYPE_NAMES = tuple(EVENT_TYPES)
Progress = Callable[[str, float, int], None]  # (phase, fraction done, rows/events so far)


@dataclass
class ImportSummary:
    import_id: str
    status: str  # imported | resumed | already imported | refused
    files: list[dict[str, Any]]
    rows_read: int = 0
    events_by_type: Counter[str] = field(default_factory=Counter)
    synthesized: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    users: int = 0
    first_ts: str | None = None
    last_ts: str | None = None
    written: int = 0
    already_present: int = 0
    seconds: float = 0.0
    max_rejected_share: float = 0.0
    feature_spec: dict[str, Any] = field(default_factory=dict)  # the topic's spec: version, built-ins, actions

    @property
    def rejected_rows(self) -> int:
        return sum(self.rejected.values())

    @property
    def rejected_share(self) -> float:
        return self.rejected_rows / self.rows_read if self.rows_read else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id, "status": self.status, "files": self.files, "rows_read": self.rows_read,
            "events": sum(self.events_by_type.values()), "events_by_type": dict(self.events_by_type.most_common()),
            "synthesized": dict(self.synthesized), "dropped_by_rule": dict(self.dropped.most_common()),
            "rejected": self.rejected_rows, "rejected_share": round(self.rejected_share, 6),
            "max_rejected_share": self.max_rejected_share,
            "rejected_by_reason": dict(self.rejected.most_common()), "users": self.users,
            "first_ts": self.first_ts, "last_ts": self.last_ts, "written": self.written,
            "already_present": self.already_present, "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_read / self.seconds) if self.seconds > 0 else None,
            "feature_spec": self.feature_spec,
        }


class _Collected:
    """Valid events of all batches: columns plus the encoded bytes, kept compactly."""

    def __init__(self) -> None:
        self.batches: list[MappedBatch] = []
        self.file_idx: list[np.ndarray] = []
        self.ucodes: list[np.ndarray] = []
        self.user_index: dict[str, int] = {}  # user id -> code, in order of first appearance

    def add(self, b: MappedBatch, file_idx: int) -> None:
        index = self.user_index
        for u in dict.fromkeys(b.users):
            if u not in index:
                index[u] = len(index)
        self.ucodes.append(np.fromiter(map(index.__getitem__, b.users), np.int64, len(b.users)))
        b.users = []  # the codes replace the strings (memory)
        self.batches.append(b)
        self.file_idx.append(np.full(len(b.ts_us), file_idx, np.int16))


def run_import(
    paths: Sequence[Path],
    mapping: SourceMapping,
    log: PartitionLog,
    ledger: Ledger,
    clock: Clock,
    max_rejected_share: float | None = None,
    progress: Progress | None = None,
    max_future_skew: timedelta = timedelta(days=1),
) -> ImportSummary:
    """Import ``paths`` into ``log`` (see the module doc); raises RejectedShareError if refused.
    Rows dated more than ``max_future_skew`` after ``clock.now()`` are rejected as future."""
    t0 = time.perf_counter()
    tick = progress or (lambda *_: None)
    threshold = mapping.max_rejected_share if max_rejected_share is None else max_rejected_share
    paths = [Path(p) for p in paths]
    keys = []
    for i, p in enumerate(paths):
        tick("hashing", i / len(paths), 0)
        if not p.is_file():
            from pipeline.ingest.errors import SourceError

            raise SourceError(f"{p}: no such file")
        keys.append(file_key(p))
    import_id = hashlib.sha256((mapping.digest + "|" + ",".join(keys)).encode()).hexdigest()[:16]
    files = [{"path": str(p), "key": k} for p, k in zip(paths, keys, strict=True)]
    entry = ledger.entry(import_id)
    if entry is not None and entry.get("state") == "done":
        s = ImportSummary(import_id, "already imported", files, max_rejected_share=threshold)
        s.already_present = int(entry.get("events", 0))
        s.seconds = time.perf_counter() - t0
        return s
    done_files = ledger.imported_files()
    todo = []
    for f in files:
        if f["key"] in done_files and f["key"] not in {g["key"] for g in todo}:
            f["skipped"] = f"already imported (import {done_files[f['key']]})"
        elif f["key"] in {g["key"] for g in todo}:
            f["skipped"] = "same content as another file of this import"
        else:
            todo.append(f)
    summary = ImportSummary(import_id, "resumed" if entry else "imported", files, max_rejected_share=threshold)

    # -- read and map --------------------------------------------------------------
    col = _Collected()
    rejected: list[Rejected] = []
    max_ts_us = (clock.now() - EPOCH + max_future_skew) // timedelta(microseconds=1)
    for fi, f in enumerate(todo):
        rows = 0
        for b in iter_batches(Path(f["path"]), mapping):
            mb = map_batch(b.data, b.first_row, f["key"], f["path"], mapping, max_ts_us, b.rows, b.invalid)
            col.add(mb, fi)
            rejected.extend(mb.rejected)
            summary.dropped.update(mb.dropped)
            rows += b.source_rows
            summary.rows_read += b.source_rows
            tick("reading", (fi + b.done) / len(todo), summary.rows_read)
        f["rows"] = rows
    summary.rejected.update(r.reason for r in rejected)
    if summary.rows_read and summary.rejected_share > threshold:
        summary.status = "refused"
        summary.seconds = time.perf_counter() - t0
        top = summary.rejected.most_common(1)[0]
        raise RejectedShareError(
            f"{summary.rejected_rows:,} of {summary.rows_read:,} rows rejected ({summary.rejected_share:.1%} > "
            f"max_rejected_share {threshold:.1%}); most common: {top[0]!r} ({top[1]:,}); nothing was written - "
            "fix the mapping, or raise the threshold (--max-rejected-share)",
            summary,
        )

    # -- columns of every event, then synthesized ones -------------------------------
    pa.default_memory_pool().release_unused()  # Arrow's freed read buffers
    ucode = _cat(col.ucodes, np.int64)
    uniques = list(col.user_index)
    ts = _cat([b.ts_us for b in col.batches], np.int64)
    code = _cat([b.code for b in col.batches], np.int8)
    row = _cat([b.row for b in col.batches], np.int64)
    plan = _cat([b.plan for b in col.batches], np.int8)
    fidx = _cat(col.file_idx, np.int16)
    bidx = np.concatenate([np.full(len(b.ts_us), i, np.int32) for i, b in enumerate(col.batches)]) \
        if col.batches else np.zeros(0, np.int32)
    local = np.concatenate([np.arange(len(b.ts_us), dtype=np.int32) for b in col.batches]) \
        if col.batches else np.zeros(0, np.int32)
    seq = np.arange(len(ts), dtype=np.int64)
    prio = np.ones(len(ts), np.int8)

    syn = synthesize(mapping, ucode, list(uniques), ts, code, row, plan, fidx,
                     [f["key"] for f in todo], ledger.signed_up())
    summary.synthesized.update(syn.counts)
    if len(syn.ts):
        syn_batch = len(col.batches)
        col.batches.append(MappedBatch([], syn.ts, syn.code, syn.anchor, syn.code, syn.buf, syn.ends))
        ucode = np.concatenate([ucode, syn.ucode])
        ts = np.concatenate([ts, syn.ts])
        code = np.concatenate([code, syn.code])
        bidx = np.concatenate([bidx, np.full(len(syn.ts), syn_batch, np.int32)])
        local = np.concatenate([local, np.arange(len(syn.ts), dtype=np.int32)])
        seq = np.concatenate([seq, syn.seq])
        prio = np.concatenate([prio, syn.prio])
    for c, n in zip(*np.unique(code, return_counts=True), strict=True):
        summary.events_by_type[TYPE_NAMES[int(c)]] = int(n)
    summary.users = len(uniques)
    if len(ts):
        summary.first_ts, summary.last_ts = from_us(int(ts.min())).isoformat(), from_us(int(ts.max())).isoformat()

    # -- route and order ------------------------------------------------------------
    n_parts = log.num_partitions
    upart = partition_for_many([str(u).encode() for u in uniques], n_parts) if len(uniques) else np.zeros(0, np.int64)
    part = upart[ucode] if len(ucode) else np.zeros(0, np.int64)
    order = np.lexsort((seq, prio, ts, part))

    # -- write (resumable) --------------------------------------------------------------
    if entry is None:
        entry = ledger.update(import_id, state="writing", mapping=mapping.name, mapping_digest=mapping.digest,
                              files=todo, started=clock.now().isoformat(),
                              base_offsets={str(p): log.end_offset(p) for p in range(n_parts)})
    prefixes = tuple(f["key"] + "-" for f in todo)
    total = len(order)
    bounds = np.searchsorted(part[order], np.arange(n_parts + 1)) if total else np.zeros(n_parts + 1, np.int64)
    done_events = 0
    for p in range(n_parts):
        lo, hi = int(bounds[p]), int(bounds[p + 1])
        if hi == lo:
            continue
        present = ids_in_log(log, p, int(entry["base_offsets"][str(p)]), prefixes) if summary.status == "resumed" \
            else set()
        for c0 in range(lo, hi, CHUNK):
            idx = order[c0:min(c0 + CHUNK, hi)]
            values = _values(col.batches, bidx[idx], local[idx])
            if present:
                kept = [v for v in values if _event_id(v) not in present]
                summary.already_present += len(values) - len(kept)
                values = kept
            if values:
                log.append(p, values)
                summary.written += len(values)
            done_events += len(idx)
            tick("writing", done_events / total, done_events)

    # -- dead letters, then done -----------------------------------------------------
    if rejected and not entry.get("dlq_written"):
        _dead_letter(log, rejected, clock, uniques, upart)
        ledger.update(import_id, dlq_written=True)
    signed = list(syn.signed_up)
    ledger.add_signed_up(signed)
    profile = source_profile(mapping)
    ledger.save_profile(profile | {"topic": log.name, "last_import": import_id})
    spec = profile["feature_spec"]
    summary.feature_spec = {"version": spec["version"], "features": len(spec["names"]),
                            "built_in": len(spec["builtin"]), "actions": [a["name"] for a in spec["actions"]]}
    summary.seconds = time.perf_counter() - t0
    ledger.update(import_id, state="done", finished=clock.now().isoformat(), events=total,
                  summary=summary.as_dict())
    return summary


def _cat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def _values(batches: list[MappedBatch], b: np.ndarray, j: np.ndarray) -> list[bytes]:
    """The encoded events at (batch ``b``, position ``j``), in the given order."""
    bufs = [mb.buf for mb in batches]
    starts = np.empty(len(b), np.int64)
    ends = np.empty(len(b), np.int64)
    for bi in np.unique(b).tolist():
        sel = b == bi
        e = batches[bi].ends
        ends[sel] = e[j[sel]]
        starts[sel] = np.where(j[sel] > 0, e[np.maximum(j[sel] - 1, 0)], 0)
    return [bufs[x][s:t] for x, s, t in zip(b.tolist(), starts.tolist(), ends.tolist(), strict=True)]


class _IdOnly(msgspec.Struct):
    event_id: str


_id_dec = msgspec.json.Decoder(_IdOnly)


def _event_id(raw: bytes) -> str:
    return _id_dec.decode(raw).event_id


_dl_enc = msgspec.json.Encoder()


def _dead_letter(log: PartitionLog, rejected: list[Rejected], clock: Clock, uniques, upart: np.ndarray) -> None:
    """Rejected rows -> ``<topic>.dlq``: ``source_topic`` is ``file:<path>``, ``source_offset``
    the row number, ``field`` the mapping key at fault, ``value`` the row's mapped columns as JSON."""
    dlq = dead_letter_log(log)
    try:
        n = dlq.num_partitions
        where = {str(u): int(p) for u, p in zip(uniques, upart.tolist(), strict=True)}
        now: datetime = clock.now()
        by_part: dict[int, list[bytes]] = {}
        for r in rejected:
            p = where.get(r.user_id, 0) if r.user_id else 0
            if r.user_id and r.user_id not in where:
                p = int(partition_for_many([r.user_id.encode()], n)[0])
            text = json.dumps(r.value, default=str, ensure_ascii=False)
            dl = DeadLetter(f"file:{r.file}", p % n, r.row, r.reason, r.field, now, text, "utf-8")
            by_part.setdefault(p % n, []).append(_dl_enc.encode(dl))
        for p, lines in sorted(by_part.items()):
            for i in range(0, len(lines), CHUNK):
                dlq.append(p, lines[i:i + CHUNK])
    finally:
        dlq.close()
