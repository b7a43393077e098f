"""Stream state in PostgreSQL: checkpoints and partition leases with fencing epochs.

The file backend (:mod:`pipeline.stream.checkpoint`) needs every worker on one
filesystem. This backend keeps the same things in one PostgreSQL database, so workers
on several hosts need only its URL:

``stream_leases`` -- one row per (topic, group, partition): ``owner``, ``epoch``,
``expires_at``. :meth:`PgLease.try_acquire` takes a partition that is free, released or
expired and **bumps the epoch**; the holder extends it with :meth:`PgLease.renew`
(each heartbeat) and gives it back with :meth:`PgLease.release`. A process killed
holding it blocks the partition for at most ``lease_ttl_s``.

``stream_checkpoints`` -- one row per partition: the feature-state snapshot, the offsets
it covers (``next_offset``, ``dlq_end``), the rest of the
:class:`~pipeline.stream.checkpoint.CheckpointMeta` as JSON, the dedup window bytes,
and the epoch of the writer. :meth:`PgStateBackend.write` is **one transaction** that
share-locks the lease row, checks that this process still owns it *at the epoch it was
granted*, and upserts the row only if the stored epoch is not newer. A stale owner (its
lease expired and another worker took the partition over) gets
:class:`~pipeline.errors.FencedError` and nothing is written; its lease is marked lost.

Why this is enough for exactly-once handover: a new owner reads the checkpoint only
after its takeover committed; an old owner's write either committed before the takeover
(the new owner reads it) or waits on the lease row's lock and is then refused.

Lease expiry uses the database server's clock (``clock_timestamp()``), so the hosts'
clocks need not agree; tests may inject a :class:`~pipeline.clock.Clock` instead.
The tables live in their own ``MetaData`` (created if missing, under an advisory lock so
concurrent first starts do not race); they do not touch the scores store's schema version.

Usage (one backend per worker process)::

    state = PgStateBackend("postgresql+psycopg://churn@db:5432/churn", "events", "churn-stream")
    lease = state.lease(3)
    if lease.try_acquire():
        ck = state.read(3)           # restore features from ck.state, resume at ck.meta.next_offset
        ...
        state.write(meta, snapshot)  # FencedError if the partition was taken over meanwhile
        lease.renew()                # every heartbeat
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP
from sqlalchemy.dialects.postgresql import insert as pg_insert

from pipeline.clock import Clock
from pipeline.errors import CheckpointCorruptError, ConfigError, FencedError
from pipeline.store.engine import open_engine, parse_url, shown
from pipeline.stream.checkpoint import CheckpointMeta

metadata = MetaData()
Time = TIMESTAMP(timezone=True)

leases = Table(
    "stream_leases",
    metadata,
    Column("topic", String(200), primary_key=True),
    Column("group_id", String(200), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("owner", String(300), nullable=True),  # None: free (released)
    Column("epoch", BigInteger, nullable=False),  # bumped at every change of owner
    Column("acquired_at", Time, nullable=False),
    Column("expires_at", Time, nullable=False),
)

checkpoints = Table(
    "stream_checkpoints",
    metadata,
    Column("topic", String(200), primary_key=True),
    Column("group_id", String(200), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("epoch", BigInteger, nullable=False),  # the writer's lease epoch
    Column("owner", String(300), nullable=False),
    Column("next_offset", BigInteger, nullable=False),  # first record not in the state
    Column("dlq_end", BigInteger, nullable=False),
    Column("meta", JSONB, nullable=False),  # the whole CheckpointMeta
    Column("state", LargeBinary, nullable=False),  # feature-state snapshot bytes
    Column("dedup", LargeBinary, nullable=False),  # event-id dedup window (may be empty)
    Column("written_at", Time, nullable=False),
)

# live workers of a group (pipeline.stream.membership): a row per worker, kept alive by
# heartbeats; a worker is a member while expires_at is in the future
members = Table(
    "stream_members",
    metadata,
    Column("topic", String(200), primary_key=True),
    Column("group_id", String(200), primary_key=True),
    Column("member", String(300), primary_key=True),
    Column("joined_at", Time, nullable=False),
    Column("expires_at", Time, nullable=False),
)

# what a stand-alone worker host refused to do, where an operator looks (pipeline.stream.host):
# e.g. "no champion in the registry: nothing scored"
host_events = Table(
    "stream_host_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("topic", String(200), nullable=False),
    Column("group_id", String(200), nullable=False),
    Column("member", String(300), nullable=False),
    Column("at", Time, nullable=False),
    Column("level", String(20), nullable=False),
    Column("message", String(4000), nullable=False),
)

_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_CREATE_LOCK = 0x43485552_4E535431  # pg_advisory_xact_lock key: "CHURNST1"
_META_FIELDS = {f.name for f in fields(CheckpointMeta)}


@dataclass(frozen=True)
class PgCheckpoint:
    """What :meth:`PgStateBackend.read` returns (the file backend's ``Checkpoint`` shape)."""

    meta: CheckpointMeta
    state: bytes
    path: str  # where it lives, for messages (no file: URL, table and key)
    dedup: bytes = b""
    epoch: int = 0


def default_owner() -> str:
    """``host:pid:random``: unique per process, readable in ``stream_leases``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class PgLease:
    """One partition's lease, as seen by the process that holds (or wants) it.

    ``held`` is this process's belief; the database decides at every
    :meth:`try_acquire`, :meth:`renew` and checkpoint write, and a write by a lease that
    was lost is refused (:class:`FencedError`)."""

    def __init__(self, backend: PgStateBackend, partition: int) -> None:
        self.backend = backend
        self.partition = partition
        self.epoch: int | None = None
        self.expires_at: datetime | None = None

    @property
    def held(self) -> bool:
        return self.epoch is not None

    def try_acquire(self) -> bool:
        """Take the partition if it is free, released or expired (new epoch), or extend
        it if this process still holds it; False if another owner holds a live lease."""
        b = self.backend
        key = b.key(leases, self.partition)
        with b.engine.begin() as conn:
            now = b.now(conn)
            conn.execute(
                pg_insert(leases)
                .values(
                    **b.key_values(self.partition),
                    owner=None,
                    epoch=0,
                    acquired_at=now,
                    expires_at=now,
                )  # fmt: skip
                .on_conflict_do_nothing()
            )
            row = conn.execute(
                select(leases.c.owner, leases.c.epoch, leases.c.expires_at)
                .where(*key)
                .with_for_update()
            ).one()
            expires = now + timedelta(seconds=b.lease_ttl_s)
            if row.owner == b.owner and row.epoch == self.epoch:  # ours: extend
                conn.execute(update(leases).where(*key).values(expires_at=expires))
                self.expires_at = expires
                return True
            if row.owner is not None and row.expires_at > now:
                self.lost()
                return False
            # never reuse an epoch, even if the lease rows were dropped meanwhile
            written = conn.execute(
                select(func.max(checkpoints.c.epoch)).where(*b.key(checkpoints, self.partition))
            ).scalar()
            epoch = max(int(row.epoch), int(written or 0)) + 1
            conn.execute(
                update(leases)
                .where(*key)
                .values(owner=b.owner, epoch=epoch, acquired_at=now, expires_at=expires)
            )
        self.epoch, self.expires_at = epoch, expires
        return True

    def renew(self) -> bool:
        """Extend a held lease by ``lease_ttl_s``; False (and no longer held) if it was
        taken over meanwhile. A lease that expired but was not taken is renewed."""
        if self.epoch is None:
            return False
        b = self.backend
        with b.engine.begin() as conn:
            now = b.now(conn)
            expires = now + timedelta(seconds=b.lease_ttl_s)
            res = conn.execute(
                update(leases)
                .where(
                    *b.key(leases, self.partition),
                    leases.c.owner == b.owner,
                    leases.c.epoch == self.epoch,
                )  # fmt: skip
                .values(expires_at=expires)
            )
        if res.rowcount == 0:
            self.lost()
            return False
        self.expires_at = expires
        return True

    def release(self) -> None:
        """Hand the partition back at once (a successor need not wait for expiry)."""
        if self.epoch is None:
            return
        b = self.backend
        with b.engine.begin() as conn:
            now = b.now(conn)
            conn.execute(
                update(leases)
                .where(
                    *b.key(leases, self.partition),
                    leases.c.owner == b.owner,
                    leases.c.epoch == self.epoch,
                )  # fmt: skip
                .values(owner=None, expires_at=now)
            )
        self.lost()

    def lost(self) -> None:
        self.epoch = None
        self.expires_at = None


class PgStateBackend:
    """Checkpoints and leases of one consumer group (``topic``, ``group``) in PostgreSQL.

    Mirrors :class:`pipeline.stream.checkpoint.CheckpointStore` (``read``, ``write``,
    ``delete``, ``clean_temp``, ``corrupt``) plus ``lease(partition)``, i.e. the
    :class:`pipeline.stream.state.CheckpointBackend` interface. One instance per worker
    process: ``owner`` identifies it in the lease table."""

    def __init__(
        self,
        url: str,
        topic: str,
        group: str,
        *,
        schema: str | None = None,
        owner: str | None = None,
        lease_ttl_s: float = 15.0,
        clock: Clock | None = None,
    ) -> None:
        parsed = parse_url(url)
        if parsed.get_backend_name() != "postgresql":
            raise ConfigError(
                f"stream state URL {shown(parsed)!r}: the shared state backend needs PostgreSQL "
                "(postgresql+psycopg://user@host:5432/db); without one, workers keep their "
                "checkpoints in files under the data dir (one host)"
            )
        if not (isinstance(lease_ttl_s, int | float) and 0 < lease_ttl_s <= 3600):
            raise ConfigError(
                f"lease_ttl_s={lease_ttl_s!r}: seconds in (0, 3600]; it bounds how long a "
                "killed worker's partitions wait before another worker may take them"
            )
        if schema is not None and not (isinstance(schema, str) and _SCHEMA_RE.match(schema)):
            raise ConfigError(
                f"stream state schema {schema!r}: use 1-63 characters from [A-Za-z0-9_], "
                "not starting with a digit"
            )
        if owner is not None and not (isinstance(owner, str) and 0 < len(owner) <= 300):
            raise ConfigError(
                f"lease owner {owner!r}: a non-empty string of at most 300 characters"
            )
        self.topic, self.group = topic, group
        self.owner = owner or default_owner()
        self.lease_ttl_s = float(lease_ttl_s)
        self.clock = clock
        self.schema = schema
        engine = open_engine(parsed)
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CREATE_LOCK})
            if schema is not None:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        if schema is not None:
            engine = engine.execution_options(schema_translate_map={None: schema})
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CREATE_LOCK})
            metadata.create_all(conn)
        self.engine = engine
        self._where = f"{shown(parsed)}{'' if schema is None else f' schema {schema}'}"
        self._leases: dict[int, PgLease] = {}

    # -- helpers -------------------------------------------------------------------
    def now(self, conn: Connection) -> datetime:
        """The lease clock: the injected one, else the database server's."""
        if self.clock is not None:
            return self.clock.now()
        return conn.execute(select(func.clock_timestamp())).scalar_one()

    def key_values(self, partition: int) -> dict[str, Any]:
        return {"topic": self.topic, "group_id": self.group, "partition": int(partition)}

    def key(self, table: Table, partition: int) -> tuple[Any, ...]:
        return (
            table.c.topic == self.topic,
            table.c.group_id == self.group,
            table.c.partition == int(partition),
        )

    def path(self, partition: int) -> str:
        """Where the partition's checkpoint lives, for messages."""
        return (
            f"{self._where} table stream_checkpoints (topic {self.topic!r}, group "
            f"{self.group!r}, partition {partition})"
        )

    # -- the CheckpointBackend interface ----------------------------------------------
    def lease(self, partition: int) -> PgLease:
        """This process's lease object of ``partition`` (one per partition)."""
        if partition not in self._leases:
            self._leases[partition] = PgLease(self, partition)
        return self._leases[partition]

    def read(self, partition: int) -> PgCheckpoint | None:
        """The partition's checkpoint, or None if it has none yet."""
        c = checkpoints.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(c.meta, c.state, c.dedup, c.epoch).where(*self.key(checkpoints, partition))
            ).first()
        if row is None:
            return None
        doc = dict(row.meta)
        unknown = sorted(set(doc) - _META_FIELDS)
        try:
            if unknown:
                raise TypeError(f"fields {unknown} unknown to this code (written by a newer one?)")
            meta = CheckpointMeta(**doc)
        except TypeError as exc:
            raise self.corrupt(
                self.path(partition), partition, f"unreadable header ({exc})"
            ) from None
        if (meta.topic, meta.group, meta.partition) != (self.topic, self.group, partition):
            raise self.corrupt(
                self.path(partition), partition,
                f"its header names topic {meta.topic!r} group {meta.group!r} partition {meta.partition}",
            )  # fmt: skip
        return PgCheckpoint(
            meta, bytes(row.state), self.path(partition), bytes(row.dedup), int(row.epoch)
        )

    def write(self, meta: CheckpointMeta, state: bytes, dedup: bytes = b"") -> str:
        """Replace the partition's checkpoint in one transaction, fenced by the lease.

        Raises :class:`FencedError` (nothing written) unless this process holds the
        partition's lease at the current epoch."""
        if (meta.topic, meta.group) != (self.topic, self.group):
            raise ValueError(
                f"checkpoint of {meta.topic}/{meta.group} written to the store of {self.topic}/{self.group}"
            )
        p = meta.partition
        lease = self._leases.get(p)
        if lease is None or lease.epoch is None:
            raise FencedError(
                f"checkpoint of partition {p} (topic {self.topic!r}, group {self.group!r}) refused: "
                f"{self.owner} does not hold its lease; take it first "
                f"(backend.lease({p}).try_acquire()) and restore from its checkpoint"
            )
        mine = lease.epoch
        with self.engine.begin() as conn:
            now = self.now(conn)
            row = conn.execute(
                select(leases.c.owner, leases.c.epoch)
                .where(*self.key(leases, p))
                .with_for_update(read=True)  # a takeover waits until this write commits
            ).first()
            if row is None or row.owner != self.owner or row.epoch != mine:
                lease.lost()
                holder = "nobody" if row is None or row.owner is None else repr(row.owner)
                current = "none" if row is None else row.epoch
                raise FencedError(
                    f"checkpoint of partition {p} (topic {self.topic!r}, group {self.group!r}) "
                    f"refused: {self.owner} wrote with lease epoch {mine}, but the lease is now at "
                    f"epoch {current} held by {holder} (this lease expired or was released and "
                    f"the partition was taken over). Stop processing partition {p}: its new owner "
                    "continues from the newest checkpoint"
                )
            values = {
                **self.key_values(p), "epoch": mine, "owner": self.owner,
                "next_offset": int(meta.next_offset), "dlq_end": int(meta.dlq_end),
                "meta": asdict(meta), "state": bytes(state), "dedup": bytes(dedup),
                "written_at": now,
            }  # fmt: skip
            ins = pg_insert(checkpoints).values(**values)
            res = conn.execute(
                ins.on_conflict_do_update(
                    index_elements=["topic", "group_id", "partition"],
                    set_={
                        k: ins.excluded[k]
                        for k in values
                        if k not in ("topic", "group_id", "partition")
                    },
                    where=checkpoints.c.epoch <= ins.excluded.epoch,
                ).returning(checkpoints.c.epoch)
            ).first()
            if res is None:  # only if the lease rows were reset under a newer checkpoint
                newer = conn.execute(
                    select(checkpoints.c.epoch).where(*self.key(checkpoints, p))
                ).scalar()
                lease.lost()
                raise FencedError(
                    f"checkpoint of partition {p} (topic {self.topic!r}, group {self.group!r}) "
                    f"refused: a checkpoint of epoch {newer} is stored, newer than this writer's "
                    f"epoch {mine}. Release the lease and take it again (a new epoch above {newer})"
                )
        return self.path(p)

    def renew_all(self) -> list[int]:
        """Extend every lease this process holds, in one statement; the partitions whose lease
        was lost meanwhile (taken over, or expired and taken) are marked lost and returned."""
        held = {p: lease.epoch for p, lease in self._leases.items() if lease.epoch is not None}
        if not held:
            return []
        c = leases.c
        with self.engine.begin() as conn:
            now = self.now(conn)
            expires = now + timedelta(seconds=self.lease_ttl_s)
            rows = conn.execute(
                update(leases)
                .where(c.topic == self.topic, c.group_id == self.group, c.owner == self.owner)
                .values(expires_at=expires)
                .returning(c.partition, c.epoch)
            ).all()
        still = {int(r.partition): int(r.epoch) for r in rows}
        lost = sorted(p for p, epoch in held.items() if still.get(p) != epoch)
        for p in lost:
            self._leases[p].lost()
        for p in held.keys() - set(lost):
            self._leases[p].expires_at = expires
        return lost

    def record_event(self, level: str, message: str) -> None:
        """Record what this worker refused or could not do (``stream_host_events``)."""
        with self.engine.begin() as conn:
            conn.execute(
                host_events.insert().values(
                    topic=self.topic, group_id=self.group, member=self.owner, at=self.now(conn),
                    level=level, message=message[:4000],
                )  # fmt: skip
            )

    def events(self) -> list[tuple[str, str, str]]:
        """``(member, level, message)`` of the group's recorded events, oldest first."""
        e = host_events.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(e.member, e.level, e.message)
                .where(e.topic == self.topic, e.group_id == self.group)
                .order_by(e.id)
            ).all()
        return [(r.member, r.level, r.message) for r in rows]

    def delete(self, partition: int) -> None:
        """Drop the partition's checkpoint (an operator's reset; the lease keeps its
        epoch, so epochs still only grow)."""
        with self.engine.begin() as conn:
            conn.execute(delete(checkpoints).where(*self.key(checkpoints, partition)))

    def clean_temp(self, partition: int) -> None:
        """Nothing to clean: a killed writer's transaction is rolled back by the server."""

    def corrupt(self, path: str, partition: int, reason: str) -> CheckpointCorruptError:
        return CheckpointCorruptError(
            f"checkpoint {path} is unusable: {reason}. It was not skipped silently. To recover, "
            f"delete it (DELETE FROM stream_checkpoints WHERE topic='{self.topic}' AND "
            f"group_id='{self.group}' AND partition={partition}; or PgStateBackend.delete): the "
            "partition's features are then rebuilt by replaying the log from its start and its "
            "scores rewritten idempotently"
        )

    # -- status ------------------------------------------------------------------------
    def owners(self) -> dict[int, tuple[str | None, int, datetime]]:
        """``{partition: (owner or None, epoch, expires_at)}`` of the group's leases."""
        c = leases.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(c.partition, c.owner, c.epoch, c.expires_at)
                .where(c.topic == self.topic, c.group_id == self.group)
                .order_by(c.partition)
            ).all()
        return {int(r.partition): (r.owner, int(r.epoch), r.expires_at) for r in rows}

    def close(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"PgStateBackend({self._where!r}, topic={self.topic!r}, group={self.group!r})"
