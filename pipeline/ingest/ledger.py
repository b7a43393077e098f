"""The import ledger: what was imported into a topic, so a re-run never duplicates.

One JSON file per topic, ``<data_dir>/import/<topic>/ledger.json``, written atomically
(temp file, fsync, rename). An import's identity is the hash of its files' contents and
of the mapping (:attr:`SourceMapping.digest`). Its entry moves ``writing`` -> ``done``;
``writing`` records each partition's end offset before the first append, so a resumed
import reads back only that tail of the log, skips the event ids already there and
appends the rest in the same order (exactly-once per event id, per-user order kept).

``users.txt`` next to it lists users that already have a (synthesized) signup, so a
later import of new files for the same users does not sign them up again.

The ledger is tied to the instance of the topic it was written for: each finished import
records ``log``, the topic's partition count and, per partition, its end offset and a hash
of its last record (:func:`log_stamp`). Offsets never move backwards and a stored record
never changes, so a topic that lost that tail, or holds another record there, is another
instance (deleted and recreated, or the other log backend, another Kafka cluster):
:meth:`Ledger.stale_for` says so, and the import refuses instead of skipping files whose
events are not in this topic as "already imported".

``inactivity-<import id>.arrow`` (inactivity churn only) holds each user's last activity
after that import and whether its inactivity cancel was written
(:class:`pipeline.ingest.synth.Carried`), so the next import continues the rule where this
one stopped. The ledger's ``inactivity_state`` names the current file; it moves to the new
one in the same atomic write that marks the import done, so a resumed import still reads
the state it started from.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from pipeline.log.base import PartitionLog


class _IdOnly(msgspec.Struct):
    event_id: str


_id_decoder = msgspec.json.Decoder(_IdOnly)


@dataclass
class Ledger:
    dir: Path

    @property
    def path(self) -> Path:
        return self.dir / "ledger.json"

    def load(self) -> dict[str, Any]:
        from pipeline.ingest.errors import SourceError

        def unreadable(why: object) -> SourceError:
            return SourceError(f"import ledger {self.path} is unreadable ({why}); restore it or import into a new "
                               "topic")

        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"imports": {}}
        except (OSError, ValueError) as exc:  # not JSON, not UTF-8 (a torn or overwritten file)
            raise unreadable(exc) from None
        imports = doc.get("imports") if isinstance(doc, dict) else None
        if not isinstance(imports, dict) or not all(isinstance(e, dict) for e in imports.values()):
            raise unreadable("not a ledger: no object of imports, one object each")
        return doc

    def save(self, doc: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True, default=str)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)

    def entry(self, import_id: str) -> dict[str, Any] | None:
        return self.load()["imports"].get(import_id)

    def update(self, import_id: str, top: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        """Set ``fields`` of the import's entry (and ``top``-level keys) in one atomic write."""
        doc = self.load()
        e = doc["imports"].setdefault(import_id, {})
        e.update(fields)
        doc.update(top or {})
        self.save(doc)
        return e

    # -- inactivity churn carried between imports ----------------------------------------
    def carried(self) -> Any:
        """The :class:`~pipeline.ingest.synth.Carried` state the last finished import left
        (None before the first)."""
        from pipeline.ingest.synth import Carried

        name = self.load().get("inactivity_state")
        if not name:
            return None
        path = self.dir / name
        try:
            with pa.memory_map(str(path)) as src:
                t = pa.ipc.open_file(src).read_all()
        except (OSError, pa.ArrowInvalid) as exc:
            from pipeline.ingest.errors import SourceError

            raise SourceError(f"import state {path} is unreadable ({exc}); restore it, or import into a new "
                              "topic") from None
        return Carried(t["user"].to_pylist(), t["last_us"].to_numpy().astype(np.int64),
                       t["file_key"].to_pylist(), t["row"].to_numpy().astype(np.int64),
                       t["cancelled"].to_numpy(zero_copy_only=False).astype(bool))  # fmt: skip

    def save_carried(self, import_id: str, state: Any) -> str:
        """Write ``state`` for ``import_id`` (durably); returns its file name for the ledger."""
        name = f"inactivity-{import_id}.arrow"
        self.dir.mkdir(parents=True, exist_ok=True)
        table = pa.table({"user": pa.array(state.users, pa.string()), "last_us": pa.array(state.last_us, pa.int64()),
                          "file_key": pa.array(state.file_key, pa.string()).dictionary_encode(),
                          "row": pa.array(state.row, pa.int64()), "cancelled": pa.array(state.cancelled, pa.bool_())})  # fmt: skip
        tmp = self.dir / (name + ".tmp")
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        tmp.replace(self.dir / name)
        return name

    def drop_old_carried(self) -> None:
        """Remove state files other than the current one (after an import finished)."""
        current = self.load().get("inactivity_state")
        for p in self.dir.glob("inactivity-*.arrow"):
            if p.name != current:
                p.unlink(missing_ok=True)

    def stale_for(self, log: PartitionLog) -> str | None:
        """Why the imports this ledger records as finished are not in ``log`` (None: they
        may be). A record the stamp names that retention has since deleted proves nothing
        either way; its partition's end offset still must not have shrunk."""
        doc = self.load()
        stamp = doc.get("log")
        if stamp is None:  # written before imports recorded a stamp: their offsets and counts
            return _stale_by_counts(doc["imports"], log)
        if stamp["partitions"] != log.num_partitions:
            return f"it was written for a topic of {stamp['partitions']} partitions, and this one has {log.num_partitions}"
        for p, end in stamp["ends"].items():
            now = log.end_offset(int(p))
            if now < end:
                return f"partition {p} ends at offset {now:,}, but ended at {end:,} after the last import"
            digest = stamp["last"].get(p)
            if digest is not None and end - 1 >= log.start_offset(int(p)):
                values, _ = log.fetch_values(int(p), end - 1, max_records=1)
                if not values or _record_digest(values[0]) != digest:
                    return (f"the record at offset {end - 1:,} of partition {p} is not the one the last import "
                            "left there")
        return None

    def finished(self) -> list[tuple[str, dict[str, Any]]]:
        """(import id, entry) of the imports that finished, oldest first."""
        done = [(iid, e) for iid, e in self.load()["imports"].items() if e.get("state") == "done"]
        return sorted(done, key=lambda ie: str(ie[1].get("finished", "")))

    def imported_files(self) -> dict[str, str]:
        """file key -> import id, for imports that finished."""
        return {f["key"]: iid for iid, e in self.finished() for f in e.get("files", [])}

    # -- users with a signup ---------------------------------------------------------
    @property
    def users_path(self) -> Path:
        return self.dir / "users.txt"

    def signed_up(self) -> set[str]:
        try:
            text = self.users_path.read_text()
        except FileNotFoundError:
            return set()
        except (OSError, ValueError) as exc:  # not UTF-8: overwritten, or bytes flipped
            from pipeline.ingest.errors import SourceError

            raise SourceError(f"import state {self.users_path} (users already signed up) is unreadable ({exc}); "
                              "restore it, or import into a new topic") from None
        return set(text.split("\n")) - {""}

    def add_signed_up(self, users: list[str]) -> None:
        if not users:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.users_path, "a") as f:
            f.write("".join(u + "\n" for u in users))
            f.flush()
            os.fsync(f.fileno())

    # -- profile of the imported source (read by the train flow) -------------------------
    @property
    def profile_path(self) -> Path:
        return self.dir / "profile.json"

    def recorded_spec_version(self) -> str | None:
        """The feature spec version the last finished import recorded in its summary (None
        before imports recorded it): what a rebuilt profile must give again."""
        done = self.finished()
        summary = done[-1][1].get("summary") if done else None
        spec = summary.get("feature_spec") if isinstance(summary, dict) else None
        return spec.get("version") if isinstance(spec, dict) else None

    def profile_remedy(self, topic: str) -> str:
        """How a lost or damaged profile comes back. Only a backup, or the importer's rebuild
        (:func:`pipeline.ingest.importer.run_import`: from the mapping those imports used,
        checked against the spec version the ledger recorded) give it back as it was; without
        a recorded version, or a mapping file, there is nothing to check a rebuild against,
        and the way on is a new topic (moving this import state aside would leave the imported
        events to the simulator's features)."""
        done = self.finished()
        last = done[-1][1] if done else {}
        files = [f["path"] for f in last.get("files", []) if isinstance(f, dict) and "path" in f]
        version = self.recorded_spec_version()
        churn = f"churn --data-dir {shlex.quote(str(self.dir.parent.parent))}"
        if version is None or not last.get("mapping_file") or not files:
            return (f"restore it from a backup (the ledger {self.path} records too little to rebuild it), or import "
                    f"the source files into a new topic (`{churn} --topic NEW import FILE... --mapping MAPPING`) "
                    "and train and stream on that one")
        return (f"restore it from a backup, or rebuild it by running an import of this topic again with the mapping "
                f"its imports used (e.g. `{churn} --topic {topic} import {shlex.quote(files[0])} --mapping "
                f"{shlex.quote(last['mapping_file'])}`): it imports nothing twice and writes the profile again if that "
                f"mapping file is unchanged since and still gives the feature spec the ledger recorded ({version})")

    def save_profile(self, profile: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.profile_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(profile, indent=1, sort_keys=True))
        tmp.replace(self.profile_path)


def log_stamp(log: PartitionLog) -> dict[str, Any]:
    """What identifies this instance of ``log`` now: its partition count and, per partition,
    its end offset and a hash of its last record (see :meth:`Ledger.stale_for`)."""
    ends: dict[str, int] = {}
    last: dict[str, str] = {}
    for p in range(log.num_partitions):
        ends[str(p)] = end = log.end_offset(p)
        values = log.fetch_values(p, end - 1, max_records=1)[0] if end > log.start_offset(p) else []
        if values:  # none: a Kafka control record (another producer's transaction) ends it; offsets still tell
            last[str(p)] = _record_digest(values[0])
    return {"partitions": log.num_partitions, "ends": ends, "last": last}


def _record_digest(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()[:16]


def _stale_by_counts(imports: dict[str, Any], log: PartitionLog) -> str | None:
    """For a ledger without a stamp: a finished import appended its events after the end
    offsets it recorded, so the topic holds at least that many records in all."""
    total = sum(log.end_offset(p) for p in range(log.num_partitions))
    for iid, e in imports.items():
        if e.get("state") != "done" or not e.get("events"):
            continue
        base = e["base_offsets"]
        if len(base) != log.num_partitions:
            return f"import {iid} was written to a topic of {len(base)} partitions, and this one has {log.num_partitions}"
        if total < (need := sum(base.values()) + e["events"]):
            return f"its partitions' end offsets add up to {total:,}, but reached at least {need:,} after import {iid}"
    return None


def ids_in_log(log: PartitionLog, partition: int, start: int, prefixes: tuple[str, ...]) -> set[str]:
    """Event ids starting with one of ``prefixes`` stored in ``partition`` from ``start`` on."""
    seen: set[str] = set()
    off = max(start, log.start_offset(partition))
    end = log.end_offset(partition)
    while off < end:
        values, nxt = log.fetch_values(partition, off, max_records=20_000)
        if not values:
            break
        for v in values:
            try:
                eid = _id_decoder.decode(v).event_id
            except msgspec.DecodeError:
                continue
            if eid.startswith(prefixes):
                seen.add(eid)
        off = nxt
    return seen


def load_profile(data_dir: Path, topic: str) -> dict[str, Any] | None:
    """The import profile of ``topic`` (None for a simulated topic)."""
    p = Path(data_dir) / "import" / topic / "profile.json"
    if not p.exists():
        return None
    return json.loads(p.read_text())
