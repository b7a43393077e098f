"""`churn import`: foreign event files -> the partition log, exactly once, in event-time order.

1. Check that the ledger belongs to this instance of the topic (refuse if its finished
   imports are not in it), hash each file (its identity) and look the import up in the
   ledger: a finished import is not repeated, a file another import already wrote is
   skipped, an interrupted one is resumed.
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
6. Dead-letter the rejected rows (file, row, reason), record the import as done with the
   topic's stamp (its end offsets and last records).

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
import unicodedata
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
from pipeline.events import EVENT_TYPES, event_time
from pipeline.features.spec import (
    PROFILE_KEY,
    UnreadableProfileError,
    read_profile,
    spec_from_profile,
)
from pipeline.features.timebase import EPOCH, from_us, to_us
from pipeline.ingest.duplicates import count_duplicates
from pipeline.ingest.errors import MappingChangedError, RejectedShareError, StaleLedgerError
from pipeline.ingest.ledger import Ledger, ids_in_log, log_stamp
from pipeline.ingest.mapping import SourceMapping
from pipeline.ingest.profile import source_profile
from pipeline.ingest.readers import bytes_key, check_file, file_key, is_gzip, iter_batches
from pipeline.ingest.synth import CANCEL, SIGNUP, synthesize
from pipeline.ingest.transform import FUTURE_REASON, MappedBatch, Rejected, map_batch
from pipeline.log.base import PartitionLog
from pipeline.log.deadletter import DeadLetter, dead_letter_log
from pipeline.log.partitioner import partition_for_many

CHUNK = 10_000
LATENESS = timedelta(hours=24)  # the feature engine's lateness (FeatureEngine's default): older is not applied
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
    duplicates: int = 0  # valid rows equal to an earlier row of this import (kept; see duplicates.py)
    late: int = 0  # events more than LATENESS older than the newest event already in their partition
    # users with rows after their last cancel and no signup after it: not subscribed from the
    # cancel on, so neither scored nor labelled past it (a resubscription the source did not log)
    active_after_cancel: int = 0
    # user ids equal to another of this import once Unicode-normalised (NFC) and case-folded
    # (`Chloé@X.fr`, `chloé@x.fr` with a decomposed é): distinct users to the log, likely one
    # person to the source; counted with a few examples, not merged (ids are the source's)
    similar_user_ids: int = 0
    similar_user_id_examples: list[list[str]] = field(default_factory=list)
    # users with rows but no signup, in this import or an earlier one, and none synthesized
    # (signup.synthesize: none): never subscribed, so never scored or labelled -- often a
    # signup row that was rejected (a missing timestamp) or a source that logs none
    never_signed_up: int = 0
    churn: str = ""  # the mapping's churn definition (cancel | inactivity)
    first_ts: str | None = None
    last_ts: str | None = None
    written: int = 0
    already_present: int = 0
    seconds: float = 0.0
    max_rejected_share: float = 0.0
    max_future_skew_hours: float = 0.0
    feature_spec: dict[str, Any] = field(default_factory=dict)  # the topic's spec: version, built-ins, actions
    profile_restored: str = ""  # the lost or damaged profile this import wrote again ("" when none was)

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
            "max_rejected_share": self.max_rejected_share, "max_future_skew_hours": self.max_future_skew_hours,
            "rejected_by_reason": dict(self.rejected.most_common()), "users": self.users,
            "duplicate_rows": self.duplicates, "late_events": self.late,
            "active_after_cancel": self.active_after_cancel, "similar_user_ids": self.similar_user_ids,
            "similar_user_id_examples": self.similar_user_id_examples, "never_signed_up": self.never_signed_up,
            "churn": self.churn,
            "first_ts": self.first_ts, "last_ts": self.last_ts, "written": self.written,
            "already_present": self.already_present, "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_read / self.seconds) if self.seconds > 0 else None,
            "feature_spec": self.feature_spec, "profile_restored": self.profile_restored,
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


@dataclass
class _Events:
    """Every event to append, as columns: user code, time, type, which batch and position
    holds its encoded bytes, and the tie-breakers (seq, prio) for the order."""

    uniques: list[str]
    ucode: np.ndarray
    ts: np.ndarray
    code: np.ndarray
    bidx: np.ndarray
    local: np.ndarray
    seq: np.ndarray
    prio: np.ndarray

    @classmethod
    def of(cls, col: _Collected) -> _Events:
        n = sum(len(b.ts_us) for b in col.batches)
        return cls(
            uniques=list(col.user_index),
            ucode=_cat(col.ucodes, np.int64),
            ts=_cat([b.ts_us for b in col.batches], np.int64),
            code=_cat([b.code for b in col.batches], np.int8),
            bidx=_cat([np.full(len(b.ts_us), i, np.int32) for i, b in enumerate(col.batches)], np.int32),
            local=_cat([np.arange(len(b.ts_us), dtype=np.int32) for b in col.batches], np.int32),
            seq=np.arange(n, dtype=np.int64),
            prio=np.ones(n, np.int8),
        )

    def extend(self, batch_index: int, syn) -> None:
        n = len(syn.ts)
        self.ucode = np.concatenate([self.ucode, syn.ucode])
        self.ts = np.concatenate([self.ts, syn.ts])
        self.code = np.concatenate([self.code, syn.code])
        self.bidx = np.concatenate([self.bidx, np.full(n, batch_index, np.int32)])
        self.local = np.concatenate([self.local, np.arange(n, dtype=np.int32)])
        self.seq = np.concatenate([self.seq, syn.seq])
        self.prio = np.concatenate([self.prio, syn.prio])


def run_import(
    paths: Sequence[Path],
    mapping: SourceMapping,
    log: PartitionLog,
    ledger: Ledger,
    clock: Clock,
    max_rejected_share: float | None = None,
    progress: Progress | None = None,
    max_future_skew_hours: float | None = None,
) -> ImportSummary:
    """Import ``paths`` into ``log`` (see the module doc); raises RejectedShareError if refused.
    Rows dated more than ``max_future_skew_hours`` (default: the mapping's) after ``clock.now()``
    are rejected as future."""
    t0 = time.perf_counter()
    tick = progress or (lambda *_: None)
    threshold = mapping.max_rejected_share if max_rejected_share is None else max_rejected_share
    skew = mapping.max_future_skew_hours if max_future_skew_hours is None else max_future_skew_hours
    _refuse_stale_ledger(ledger, log)
    import_id, files = _identify([Path(p) for p in paths], mapping, tick)
    restored = _restore_profile(mapping, log, ledger)
    entry = ledger.entry(import_id)
    if entry is not None and entry.get("state") == "done":
        s = ImportSummary(import_id, "already imported", files, max_rejected_share=threshold,
                          max_future_skew_hours=skew)
        s.already_present = int(entry.get("events", 0))
        if restored is not None:
            s.profile_restored, s.feature_spec = str(ledger.profile_path), _spec_summary(restored)
        s.seconds = time.perf_counter() - t0
        return s
    todo = _files_to_read(files, ledger)
    if not todo:
        _refuse_remapping(files, mapping, ledger, log.name)
    _refuse_profile_change(mapping, ledger, log.name)
    if entry is None:
        _refuse_unrecorded(todo, log, ledger)
    summary = ImportSummary(import_id, "resumed" if entry else "imported", files, max_rejected_share=threshold,
                            max_future_skew_hours=skew, profile_restored=str(ledger.profile_path) if restored else "")
    max_ts_us = (clock.now() - EPOCH + timedelta(hours=skew)) // timedelta(microseconds=1)
    col, rejected = _read_and_map(todo, mapping, max_ts_us, summary, tick)
    _refuse_if_too_many_rejected(summary, threshold, t0)
    events, syn = _with_synthesized(col, mapping, todo, ledger, summary)
    part, upart, order = _route_and_order(events, log.num_partitions)
    if entry is None:
        entry = ledger.update(import_id, state="writing", mapping=mapping.name, mapping_file=mapping.file,
                              mapping_digest=mapping.digest, files=todo, started=clock.now().isoformat(),
                              base_offsets={str(p): log.end_offset(p) for p in range(log.num_partitions)})
    summary.late = _late_events(log, events.ts, part, entry)
    _append(log, col.batches, events, part, order, entry, tuple(f["key"] + "-" for f in todo), summary, tick)
    if rejected and not entry.get("dlq_written"):
        _dead_letter(log, rejected, clock, events.uniques, upart)
        ledger.update(import_id, dlq_written=True)
    ledger.add_signed_up(list(syn.signed_up))
    _record_profile(mapping, log, ledger, import_id, summary)
    summary.seconds = time.perf_counter() - t0
    top = {"log": log_stamp(log)}
    if syn.carried is not None:
        top["inactivity_state"] = ledger.save_carried(import_id, syn.carried)
    ledger.update(import_id, top, state="done", finished=clock.now().isoformat(), events=len(order),
                  summary=summary.as_dict())
    if syn.carried is not None:
        ledger.drop_old_carried()
    return summary


def _refuse_stale_ledger(ledger: Ledger, log: PartitionLog) -> None:
    """A ledger whose finished imports this topic does not hold (:meth:`Ledger.stale_for`)
    would keep their files out of it for good as "already imported". Refuse, saying why and
    the way out; the ledger's directory is left as it is (it may belong to another log)."""
    why = ledger.stale_for(log)
    if why is None:
        return
    done = ledger.finished()
    last, finished = done[-1][0], done[-1][1].get("finished", "")
    raise StaleLedgerError(
        f"nothing imported: the import ledger {ledger.path} records {len(done)} finished import(s) into topic "
        f"{log.name!r} (the last, {last}, finished {finished}), but this topic does not hold them: {why}. The "
        "topic was deleted and recreated since, or this is another log (the other log backend, another Kafka "
        "cluster), and the ledger would skip those files as already imported. To import into this topic, move "
        f"the import state aside (`mv {ledger.dir} {ledger.dir}.old`) and import again: every file is then "
        "imported into it, and its profile, signed-up users and inactivity state start afresh. Otherwise point at "
        "the log that holds those imports (CHURN_LOG_BACKEND, CHURN_KAFKA_BOOTSTRAP)"
    )


def _identify(paths: list[Path], mapping: SourceMapping, tick: Progress) -> tuple[str, list[dict[str, Any]]]:
    """Hash every file: the import's id is the mapping's digest plus the files' contents."""
    files = []
    for i, p in enumerate(paths):
        tick("hashing", i / len(paths), 0)
        check_file(p)
        f = {"path": str(p), "key": file_key(p)}
        if is_gzip(p) and (legacy := bytes_key(p)) != f["key"]:
            f["bytes_key"] = legacy  # how a gzip file was known before its content was hashed
        files.append(f)
    import_id = hashlib.sha256((mapping.digest + "|" + ",".join(f["key"] for f in files)).encode()).hexdigest()[:16]
    return import_id, files


def _done_by(f: dict[str, Any], done: dict[str, str]) -> str | None:
    """The import that wrote ``f`` already (by its key, or its bytes' key: an older import)."""
    return done.get(f["key"]) or (done.get(f["bytes_key"]) if "bytes_key" in f else None)


def _files_to_read(files: list[dict[str, Any]], ledger: Ledger) -> list[dict[str, Any]]:
    """The files this import reads; the others get a ``skipped`` reason (already imported by
    another import, or the same content as an earlier file of this one)."""
    done_files = ledger.imported_files()
    todo: list[dict[str, Any]] = []
    for f in files:
        if f["key"] in {g["key"] for g in todo}:
            f["skipped"] = "same content as another file of this import"
        elif (by := _done_by(f, done_files)) is not None:
            f["skipped"] = f"already imported (import {by})"
        else:
            todo.append(f)
    return todo


def _refuse_remapping(files: list[dict[str, Any]], mapping: SourceMapping, ledger: Ledger, topic: str) -> None:
    """Every file was written by earlier imports: with another mapping, the new mapping
    would be applied to nothing while its profile (churn definition, feature spec) replaced
    the one the log's events were made by. Refuse, naming the earlier import and the way out."""
    imports = ledger.load()["imports"]
    done = ledger.imported_files()
    earlier = {by for f in files if (by := _done_by(f, done)) is not None}
    other = sorted(i for i in earlier if imports.get(i, {}).get("mapping_digest") != mapping.digest)
    if not other:
        return  # the same mapping (e.g. the files in another order or grouping): nothing to do
    used = [(i, _earlier_mapping(imports[i].get("mapping", "?"), imports[i].get("mapping_file"), mapping))
            for i in other]  # fmt: skip
    names = "; ".join(f"{i} with {m}" for i, m in used)
    raise MappingChangedError(
        f"nothing imported: every file was already imported into topic {topic!r} by {names}, not with "
        f"{_this_mapping(mapping)}. The log keeps the events as that mapping made them (an import never "
        "rewrites or duplicates them), so a changed mapping cannot apply to these files here; the topic's "
        f"profile is unchanged. To use the new mapping, import into a new topic (`churn --topic NAME import "
        "...`) or a new data directory"
    )


def _refuse_unrecorded(todo: list[dict[str, Any]], log: PartitionLog, ledger: Ledger) -> None:
    """A file whose events the topic already holds although the ledger does not record its
    import: the ledger was deleted, replaced or restored from an older copy. Importing it
    again would append every row a second time (the same event ids), silently. The log is
    searched only when it holds more records than the ledger's imports account for (always
    on a topic that also has simulated events), so a topic whose ledger is intact pays
    nothing. Refuse, naming the file; other files import as usual."""
    if not todo:
        return
    n = log.num_partitions
    held = sum(log.end_offset(p) - log.start_offset(p) for p in range(n))
    accounted = sum(int(e.get("events") or 0) for e in ledger.load()["imports"].values())
    if held <= accounted:
        return
    found: Counter[str] = Counter()
    prefixes = tuple(f["key"] + "-" for f in todo)
    for p in range(n):
        for eid in ids_in_log(log, p, 0, prefixes):
            found[eid[: eid.index("-")]] += 1
    again = [(f, found[f["key"]]) for f in todo if found[f["key"]]]
    if not again:
        return
    from pipeline.ingest.errors import SourceError

    names = "; ".join(f"{f['path']} ({k:,} events, ids {f['key']}-<row>)" for f, k in again)
    raise SourceError(
        f"nothing imported: topic {log.name!r} already holds events of {names}, but the import ledger "
        f"{ledger.path} does not record that import (it was deleted, replaced or restored from an older copy). "
        "Importing again would append those rows a second time. Restore the ledger from a backup; if that "
        "import had finished, its events are all in the log and there is nothing to redo. Files not imported "
        "before import as usual"
    )


def _meaning(profile: dict[str, Any]) -> dict[str, Any]:
    """What a profile says the topic's events mean: the churn definition (and its days), the
    event types the mapping writes (profiles before they were recorded: unknown, None) and
    the declared actions. How the code derives the feature spec from that may change
    between versions; the meaning may not, within one topic."""
    churn = profile.get("churn") or {}
    spec = profile.get(PROFILE_KEY) or {}
    return {"churn": (churn.get("definition"), churn.get("inactive_days")),
            "event_types": profile.get("event_types"),
            "actions": sorted(a.get("name") for a in spec.get("actions", []))}  # fmt: skip


def _stored_profile(ledger: Ledger) -> dict[str, Any] | None:
    if not ledger.profile_path.exists():
        return None
    try:
        return json.loads(ledger.profile_path.read_text())
    except ValueError as exc:
        from pipeline.ingest.errors import SourceError

        raise SourceError(f"import profile {ledger.profile_path} is unreadable ({exc}); restore it or import "
                          "into a new topic") from None


def _refuse_profile_change(mapping: SourceMapping, ledger: Ledger, topic: str) -> None:
    """New files under a mapping that gives the topic's events another meaning: the log's
    events so far were made by the earlier mapping (its churn definition, its event types,
    its actions), and training reads the whole topic under one profile. Adding events of
    another meaning would train on a mix labelled by neither. Refuse before reading
    anything; a mapping that only reads the files differently (renamed columns, a time
    format) has the same meaning and imports as usual."""
    old = _stored_profile(ledger)
    if old is None or old.get("mapping_digest") == mapping.digest:
        return
    was, now = _meaning(old), _meaning(source_profile(mapping))
    changes = []
    if was["churn"] != now["churn"]:
        changes.append(f"the churn definition ({_churn_text(was['churn'])} -> {_churn_text(now['churn'])})")
    if was["event_types"] is not None and was["event_types"] != now["event_types"]:
        gone = sorted(set(was["event_types"]) - set(now["event_types"]))
        added = sorted(set(now["event_types"]) - set(was["event_types"]))
        changes.append("the event types (" + "; ".join(
            ([f"no longer {gone}"] if gone else []) + ([f"new {added}"] if added else [])) + ")")
    if was["actions"] != now["actions"]:
        changes.append(f"the declared actions ({was['actions']} -> {now['actions']})")
    if not changes:
        return
    by = f"by import {old['last_import']} " if "last_import" in old else ""
    raise MappingChangedError(
        f"nothing imported: topic {topic!r} holds events imported {by}with "
        f"{_earlier_mapping(old.get('mapping', '?'), old.get('mapping_file'), mapping)}, and {_this_mapping(mapping)} "
        f"changes {' and '.join(changes)}. The log keeps its events as the earlier "
        "mapping made them and training reads the whole topic under one profile, so events of another meaning "
        "cannot be added to it; the topic's profile is unchanged. Import with the earlier mapping, or into a new "
        "topic (`churn --topic NAME import ...`) or a new data directory"
    )


def _earlier_mapping(name: str, file: str | None, mapping: SourceMapping) -> str:
    """An earlier import's mapping as a refusal names it beside :func:`_this_mapping`: two
    mappings can share a name ("mapping", from two mapping.yaml files), so by its file too,
    and the same file, edited since, as it was then."""
    if file is None:  # recorded before mappings' files were
        return f"mapping {name!r} (its file was not recorded)"
    return f"mapping {name!r} from {file}" + (" as it was then" if file == mapping.file else "")


def _this_mapping(mapping: SourceMapping) -> str:
    return f"this import's mapping {mapping.name!r}" + (f" from {mapping.file}" if mapping.file else "")


def _churn_text(churn: tuple[Any, Any]) -> str:
    definition, days = churn
    return f"inactivity ({days} days)" if definition == "inactivity" else str(definition)


def _read_and_map(todo: list[dict[str, Any]], mapping: SourceMapping, max_ts_us: int, summary: ImportSummary,
                  tick: Progress) -> tuple[_Collected, list[Rejected]]:
    """Every row of every file through the mapping: valid events kept compactly, rejected rows
    and rows dropped by the mapping's rule counted."""
    col = _Collected()
    rejected: list[Rejected] = []
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
    pa.default_memory_pool().release_unused()  # Arrow's freed read buffers
    return col, rejected


def _refuse_if_too_many_rejected(summary: ImportSummary, threshold: float, t0: float) -> None:
    if not summary.rows_read or summary.rejected_share <= threshold:
        return
    summary.status = "refused"
    summary.seconds = time.perf_counter() - t0
    top = summary.rejected.most_common(1)[0]
    if top[0] == FUTURE_REASON:  # the mapping is fine: the export's clock or zone, or a deliberate future
        fix = (f"check the timestamps' time zone (the mapping's timestamp settings) and the export's clock, or, if "
               f"rows may be dated ahead, raise max_future_skew_hours ({summary.max_future_skew_hours:g} now: the "
               "mapping key or --max-future-skew-hours)")
    else:
        fix = "fix the mapping"
    raise RejectedShareError(
        f"{summary.rejected_rows:,} of {summary.rows_read:,} rows rejected ({summary.rejected_share:.1%} > "
        f"max_rejected_share {threshold:.1%}); most common: {top[0]!r} ({top[1]:,}); nothing was written - "
        f"{fix}, or raise the threshold (--max-rejected-share)",
        summary,
    )


def _with_synthesized(col: _Collected, mapping: SourceMapping, todo: list[dict[str, Any]], ledger: Ledger,
                      summary: ImportSummary):
    """The events' columns plus what the source lacks (signups, inactivity churn); counts them."""
    events = _Events.of(col)
    summary.duplicates = count_duplicates(events.ucode, events.ts, events.code,
                                          lambda idx: _values(col.batches, events.bidx[idx], events.local[idx]))
    row = _cat([b.row for b in col.batches], np.int64)
    plan = _cat([b.plan for b in col.batches], np.int8)
    fidx = _cat(col.file_idx, np.int16)
    carried = ledger.carried() if mapping.churn == "inactivity" else None
    earlier = ledger.signed_up()
    syn = synthesize(mapping, events.ucode, list(events.uniques), events.ts, events.code, row, plan, fidx,
                     [f["key"] for f in todo], earlier, carried)
    if not mapping.synthesize_signup:
        summary.never_signed_up = sum(1 for u in events.uniques if u not in syn.signed_up and u not in earlier)
    summary.users = len(events.uniques)
    summary.similar_user_ids, summary.similar_user_id_examples = _similar_ids(events.uniques)
    events.uniques = syn.uniques  # and the earlier imports' users it cancels without a row here
    summary.synthesized.update(syn.counts)
    if len(syn.ts):
        col.batches.append(MappedBatch([], syn.ts, syn.code, syn.anchor, syn.code, syn.buf, syn.ends))
        events.extend(len(col.batches) - 1, syn)
    summary.churn = mapping.churn
    summary.active_after_cancel = _active_after_cancel(events)
    for c, n in zip(*np.unique(events.code, return_counts=True), strict=True):
        summary.events_by_type[TYPE_NAMES[int(c)]] = int(n)
    if len(events.ts):
        summary.first_ts = from_us(int(events.ts.min())).isoformat()
        summary.last_ts = from_us(int(events.ts.max())).isoformat()
    return events, syn


def _similar_ids(users: Sequence[str], examples: int = 3) -> tuple[int, list[list[str]]]:
    """Ids that another id of ``users`` equals after NFC normalisation and case folding:
    how many, and a few groups of them."""
    groups: dict[str, list[str]] = {}
    for u in users:
        key = unicodedata.normalize("NFC", u).casefold() if not u.isascii() else u.casefold()
        groups.setdefault(key, []).append(u)
    similar = [g for g in groups.values() if len(g) > 1]
    return sum(len(g) for g in similar), [sorted(g)[:4] for g in similar[:examples]]


def _active_after_cancel(events: _Events) -> int:
    """Users of this import with a row after their last cancel and no signup after it."""
    n = len(events.uniques)
    if not n or not len(events.ts):
        return 0
    lowest = np.iinfo(np.int64).min

    def last(mask: np.ndarray) -> np.ndarray:
        out = np.full(n, lowest, np.int64)
        np.maximum.at(out, events.ucode[mask], events.ts[mask])
        return out

    cancel, signup = events.code == CANCEL, events.code == SIGNUP
    last_cancel = last(cancel)
    after = (last_cancel > lowest) & (last(~cancel & ~signup) > last_cancel) & (last(signup) < last_cancel)
    return int(after.sum())


def _route_and_order(events: _Events, n_parts: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each event's partition (by user) and the append order: partition, then event time."""
    uniques = events.uniques
    upart = partition_for_many([str(u).encode() for u in uniques], n_parts) if uniques else np.zeros(0, np.int64)
    part = upart[events.ucode] if len(events.ucode) else np.zeros(0, np.int64)
    return part, upart, np.lexsort((events.seq, events.prio, events.ts, part))


def _late_events(log: PartitionLog, ts: np.ndarray, part: np.ndarray, entry: dict[str, Any]) -> int:
    """Events dated more than :data:`LATENESS` before the newest event the log held in their
    partition before this import (its last record): the feature engine counts them as late
    and does not apply them - usually a file overlapping an earlier import, or files
    imported out of time order."""
    newest = np.full(log.num_partitions, np.iinfo(np.int64).min, np.int64)
    for p in range(log.num_partitions):
        base = int(entry["base_offsets"][str(p)])
        if base <= log.start_offset(p):
            continue  # the partition was empty before this import
        values, _ = log.fetch_values(p, base - 1, max_records=1)
        t = event_time(values[0]) if values else None
        if t is not None:
            newest[p] = to_us(t)
    if not len(ts) or (newest == np.iinfo(np.int64).min).all():
        return 0
    limit = np.where(newest > np.iinfo(np.int64).min, newest - LATENESS // timedelta(microseconds=1), newest)
    return int((ts < limit[part]).sum())


def _append(log: PartitionLog, batches: list[MappedBatch], events: _Events, part: np.ndarray, order: np.ndarray,
            entry: dict[str, Any], prefixes: tuple[str, ...], summary: ImportSummary, tick: Progress) -> None:
    """Append per partition in chunks; a resumed import skips event ids already in the log."""
    n_parts = log.num_partitions
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
            values = _values(batches, events.bidx[idx], events.local[idx])
            if present:
                kept = [v for v in values if _event_id(v) not in present]
                summary.already_present += len(values) - len(kept)
                values = kept
            if values:
                log.append(p, values)
                summary.written += len(values)
            done_events += len(idx)
            tick("writing", done_events / total, done_events)


def _record_profile(mapping: SourceMapping, log: PartitionLog, ledger: Ledger, import_id: str,
                    summary: ImportSummary) -> None:
    """The source's profile (its feature spec: built-ins plus its own actions) for training.

    A topic's feature spec is fixed by its first import: later imports (same meaning,
    :func:`_refuse_profile_change`) keep the stored spec and what it defaults or derives,
    even when this code would derive it differently (a newer version dropping a feature
    that is always 0 there), since the topic's champion was trained on it."""
    profile = source_profile(mapping)
    old = _stored_profile(ledger)
    if old is not None:
        for key in ("defaulted", "derived", PROFILE_KEY):
            if key in old:
                profile[key] = old[key]
            else:  # an older profile without it (no spec: the default one)
                profile.pop(key, None)
        if old.get("event_types") is not None:
            profile["event_types"] = old["event_types"]
    ledger.save_profile(profile | {"topic": log.name, "last_import": import_id})
    summary.feature_spec = _spec_summary(profile)


def _spec_summary(profile: dict[str, Any]) -> dict[str, Any]:
    """The topic's feature spec as an import summary shows it."""
    spec = spec_from_profile(profile).document()
    return {"version": spec["version"], "features": len(spec["names"]), "built_in": len(spec["builtin"]),
            "actions": [a["name"] for a in spec["actions"]]}


def _restore_profile(mapping: SourceMapping, log: PartitionLog, ledger: Ledger) -> dict[str, Any] | None:
    """Write a lost or damaged profile again, beside a ledger that records finished imports;
    return it (None: nothing to restore).

    Without it training and the stream would read the topic with the simulator's features,
    and the next import would take this mapping's meaning for the topic's. The profile
    follows from the mapping (:func:`source_profile`), but the topic keeps the spec of its
    first import while the code deriving it may change: rebuild only from a mapping those
    imports used (its digest), and only when it still gives the spec version the ledger
    recorded. Otherwise refuse; nothing is written."""
    done = ledger.finished()
    if not done:
        return None
    try:
        if read_profile(ledger.profile_path) is not None:
            return None
        problem = "is missing"
    except UnreadableProfileError as exc:
        problem = f"is unreadable ({exc})"
    recorded = ledger.recorded_spec_version()
    profile = source_profile(mapping)
    rebuilt = spec_from_profile(profile).version
    if mapping.digest not in {e.get("mapping_digest") for _, e in done}:
        why = f"{_this_mapping(mapping)} is not one the topic's imports used"
    elif recorded is None:
        why = "the ledger records no feature spec version to check a rebuilt profile against"
    elif rebuilt != recorded:
        why = f"this code derives feature spec {rebuilt} from it, not the topic's {recorded}"
    else:
        ledger.save_profile(profile | {"topic": log.name, "last_import": done[-1][0]})
        return profile
    from pipeline.ingest.errors import SourceError

    raise SourceError(f"nothing imported: the import profile {ledger.profile_path} {problem}, and it cannot be "
                      f"rebuilt from this import: {why}. To get it back, {ledger.profile_remedy(log.name)}")


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
