"""Schema versioning: a one-row ``schema_version`` table, ``create_all``, and migrations.

On open, :func:`migrate` runs in one write transaction (SQLite ``BEGIN IMMEDIATE``,
PostgreSQL an advisory lock), so workers starting together migrate once:

* fresh database (no ``schema_version``): create every table of ``schema.metadata`` and
  stamp ``SCHEMA_VERSION``;
* version v < ``SCHEMA_VERSION``: run ``MIGRATIONS[v + 1]``, ... in order, then
  ``create_all`` (idempotent: only missing tables) and stamp the new version;
* version > ``SCHEMA_VERSION``: refuse (``StoreSchemaError``): newer code wrote this
  database; upgrade this installation or use another database.

Version 2 added the drift tables, the way any new table is added (version 3 added a
column, ``scores.active``: see ``_v3_scores_active``)::

    # schema.py
    drift_runs = Table("drift_runs", metadata, Column("run_id", Id, primary_key=True), ...)

    # here
    SCHEMA_VERSION = 2

    def _v2_drift_runs(conn: Connection) -> None:
        schema.drift_runs.create(conn, checkfirst=True)
        schema.drift_features.create(conn, checkfirst=True)

    MIGRATIONS = {2: _v2_drift_runs}

A migration receives the connection of the open transaction and must be idempotent
(``checkfirst=True``, ``ADD COLUMN IF NOT EXISTS`` on PostgreSQL), so a crash between it
and the version stamp is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

import numpy as np
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.exc import DBAPIError

from pipeline.errors import StoreSchemaError
from pipeline.store import schema, segments
from pipeline.store.rows import TimeCodec

SCHEMA_VERSION = 11

Migration = Callable[[Connection], None]
log = logging.getLogger("pipeline.store")


def _v2_drift_runs(conn: Connection) -> None:
    """Version 2: the stream's drift checks (``drift_runs``, ``drift_features``)."""
    schema.drift_runs.create(conn, checkfirst=True)
    schema.drift_features.create(conn, checkfirst=True)


def _v3_scores_active(conn: Connection) -> None:
    """Version 3: ``scores.active`` (False once the user cancelled). Rows written before
    it was tracked are inactive when they carry the stream's mark of a cancelled user:
    no plan and a monthly revenue of 0. Also drops ``score_history``'s time index (see
    ``schema.score_history``)."""
    table = schema.scores
    owner = conn.schema_for_object(table)
    names = {c["name"] for c in inspect(conn).get_columns(table.name, schema=owner)}
    q = conn.dialect.identifier_preparer.quote
    name = f"{q(owner)}.{q(table.name)}" if owner else q(table.name)
    index = q("ix_score_history_time")
    conn.execute(text(f"DROP INDEX IF EXISTS {q(owner) + '.' if owner else ''}{index}"))
    if "active" not in names:
        default = "true" if conn.dialect.name == "postgresql" else "1"
        conn.execute(
            text(f"ALTER TABLE {name} ADD COLUMN active BOOLEAN NOT NULL DEFAULT {default}")
        )
    conn.execute(
        text(f"UPDATE {name} SET active = :no WHERE plan IS NULL AND monthly_revenue = 0"),
        {"no": False},
    )


def _v4_history_per_interval(conn: Connection) -> None:
    """Version 4: ``score_history`` keyed by (user_id, bucket) -- one point per user per
    event-time interval (``records.HistoryPolicy``) -- and ``scores`` without the sampling
    columns and triggers. Old points are kept, each in a bucket of its own time."""
    q = conn.dialect.identifier_preparer.quote
    hist = schema.score_history
    owner = conn.schema_for_object(hist)

    def name(table: str) -> str:
        return f"{q(owner)}.{q(table)}" if owner else q(table)

    if conn.dialect.name == "sqlite":
        for trigger in schema.OLD_SQLITE_TRIGGERS:
            conn.execute(text(f"DROP TRIGGER IF EXISTS {q(trigger)}"))
    found = {c["name"] for c in inspect(conn).get_columns("scores", schema=owner)}
    for column in ("history_time", "history_risk"):
        if column in found:
            conn.execute(text(f"ALTER TABLE {name('scores')} DROP COLUMN {q(column)}"))
    have = inspect(conn).has_table(hist.name, schema=owner)
    if have and "bucket" in {c["name"] for c in inspect(conn).get_columns(hist.name, schema=owner)}:
        return
    if have:
        conn.execute(text(f"ALTER TABLE {name(hist.name)} RENAME TO {q('score_history_v3')}"))
    hist.create(conn, checkfirst=True)
    if have:
        conn.execute(text(
            f"INSERT INTO {name(hist.name)} (user_id, bucket, time, risk, model_version) "
            f"SELECT user_id, time, time, risk, model_version FROM {name('score_history_v3')}"
        ))  # fmt: skip
        conn.execute(text(f"DROP TABLE {name('score_history_v3')}"))


def _v5_check_status_and_realised(conn: Connection) -> None:
    """Version 5: ``drift_runs.status``/``status_reason`` (skipped and failed checks are
    rows too; older rows are "checked") and the ``realised_performance`` table."""
    table = schema.drift_runs
    owner = conn.schema_for_object(table)
    names = {c["name"] for c in inspect(conn).get_columns(table.name, schema=owner)}
    q = conn.dialect.identifier_preparer.quote
    name = f"{q(owner)}.{q(table.name)}" if owner else q(table.name)
    if "status" not in names:
        conn.execute(text(f"ALTER TABLE {name} ADD COLUMN status VARCHAR(16) NOT NULL DEFAULT 'checked'"))
    if "status_reason" not in names:
        conn.execute(text(f"ALTER TABLE {name} ADD COLUMN status_reason TEXT"))
    schema.realised_performance.create(conn, checkfirst=True)


def _v6_drift_episodes(conn: Connection) -> None:
    """Version 6: ``drift_episodes`` and ``retrain_decisions`` (pipeline.drift.episodes)."""
    schema.drift_episodes.create(conn, checkfirst=True)
    schema.retrain_decisions.create(conn, checkfirst=True)


def _v7_history_bucket_first(conn: Connection) -> None:
    """Version 7: ``score_history`` keyed (bucket, user_id) instead of (user_id, bucket)
    (see ``schema.score_history``: a commit then dirties pages in proportion to its new
    points, not to the whole history). Same rows; only the key order changes."""
    hist = schema.score_history
    owner = conn.schema_for_object(hist)
    pk = inspect(conn).get_pk_constraint(hist.name, schema=owner)
    if pk["constrained_columns"] == ["bucket", "user_id"]:
        return
    q = conn.dialect.identifier_preparer.quote

    def name(table: str) -> str:
        return f"{q(owner)}.{q(table)}" if owner else q(table)

    if conn.dialect.name == "postgresql":
        old = pk.get("name") or "score_history_pkey"
        conn.execute(text(f"ALTER TABLE {name(hist.name)} DROP CONSTRAINT {q(old)}, "
                          f"ADD CONSTRAINT {q(old)} PRIMARY KEY (bucket, user_id)"))  # fmt: skip
        return
    conn.execute(text(f"ALTER TABLE {name(hist.name)} RENAME TO {q('score_history_v6')}"))
    hist.create(conn, checkfirst=True)
    conn.execute(text(
        f"INSERT INTO {name(hist.name)} (bucket, user_id, time, risk, model_version) "
        f"SELECT bucket, user_id, time, risk, model_version FROM {name('score_history_v6')} "
        "ORDER BY bucket, user_id"
    ))  # fmt: skip
    conn.execute(text(f"DROP TABLE {name('score_history_v6')}"))


def _v8_history_segments(conn: Connection) -> None:
    """Version 8: score history as columnar segments (``schema.score_history_segments``,
    :mod:`pipeline.store.segments`). The keyed points of ``score_history`` are carried
    over into segments of up to ``CARRY_POINTS`` points (each key once: any order
    resolves to the same points), then the keyed table is dropped."""
    segs, hist = schema.score_history_segments, schema.score_history
    owner = conn.schema_for_object(hist)
    segs.create(conn, checkfirst=True)
    if not inspect(conn).has_table(hist.name, schema=owner):
        return
    codec = TimeCodec(conn.dialect.name)
    c = hist.c
    q = select(c.user_id, c.bucket, c.time, c.risk, c.model_version).order_by(c.user_id, c.bucket)
    rows = conn.execute(q).all()  # buffered: the inserts below use the same connection
    for lo in range(0, len(rows), CARRY_POINTS):
        users, buckets, times, risks, versions = zip(*rows[lo : lo + CARRY_POINTS], strict=True)
        points = segments.Points(
            segments.user_array(list(users)), codec.to_us(buckets).view("int64"),
            codec.to_us(times).view("int64"), np.asarray(risks, dtype=np.float64),
            np.array(versions, dtype=object),
        )  # fmt: skip
        conn.execute(segs.insert(), [segments.row(points, codec)])
    q = conn.dialect.identifier_preparer.quote
    conn.execute(text(f"DROP TABLE {q(owner) + '.' if owner else ''}{q(hist.name)}"))


def _v9_score_times_as_integers(conn: Connection) -> None:
    """Version 9: SQLite keeps ``scores``' two times as int64 microseconds since the
    epoch (``schema.ScoreTime``) instead of ISO text: a narrower table, and every upsert
    batch rewrites most of its pages. The table is rebuilt with its rows, times
    converted exactly (``CARRY_POINTS`` rows at a time). PostgreSQL keeps ``timestamptz``:
    nothing to do."""
    if conn.dialect.name != "sqlite":
        return
    table = schema.scores
    cols = {c["name"]: c["type"] for c in inspect(conn).get_columns(table.name)}
    if str(cols.get("features_time", "")).upper() in ("BIGINT", "INTEGER"):
        return  # already converted (a crash after this migration, before the stamp)
    q = conn.dialect.identifier_preparer.quote
    conn.execute(text(f"ALTER TABLE {q(table.name)} RENAME TO {q('scores_v8')}"))
    table.create(conn)
    codec = TimeCodec("sqlite")
    names = [c.name for c in table.columns]
    old = conn.execute(text(f"SELECT {', '.join(q(n) for n in names)} FROM {q('scores_v8')}")).all()
    at = {n: i for i, n in enumerate(names)}
    insert = f"INSERT INTO {q(table.name)} ({', '.join(q(n) for n in names)}) VALUES ({', '.join('?' for _ in names)})"
    for lo in range(0, len(old), CARRY_POINTS):
        part = old[lo : lo + CARRY_POINTS]
        columns = {n: [r[i] for r in part] for n, i in at.items()}
        for n in ("features_time", "updated_at"):
            columns[n] = codec.score_times(codec.to_us(columns[n]))
        conn.exec_driver_sql(insert, list(zip(*columns.values(), strict=True)))  # raw: JSON text stays text
    conn.execute(text(f"DROP TABLE {q('scores_v8')}"))


def _v10_score_keys_compare_bytewise(conn: Connection) -> None:
    """Version 10: PostgreSQL's ``scores.user_id`` is ``COLLATE "C"`` (``schema.UserKey``):
    its primary-key B-tree compares bytes instead of calling the locale's ``strcoll``
    (every upsert walks it once per row), and ``ORDER BY user_id`` is code-point order,
    as on SQLite. The column's type is unchanged; its index is rebuilt. SQLite already
    compares bytes: nothing to do."""
    if conn.dialect.name != "postgresql":
        return
    owner = conn.schema_for_object(schema.scores)
    q = conn.dialect.identifier_preparer.quote
    name = f"{q(owner)}.{q(schema.scores.name)}" if owner else q(schema.scores.name)
    conn.execute(text(f'ALTER TABLE {name} ALTER COLUMN user_id TYPE VARCHAR(200) COLLATE "C"'))


def history_payload_lz4(conn: Connection) -> bool:
    """PostgreSQL 14 or later: ``score_history_segments.payload`` compressed with lz4
    instead of the default pglz, where the server was built with lz4 (else it keeps pglz
    and says so in the log). A segment holds one write's points (~370 KB for 10,000) and
    is compressed by the server inside every scores + history write; inserting one took
    17 ms with pglz and 5 ms with lz4 on this machine (stored size 174 vs 186 KB; no
    compression: 5.5 ms, 387 KB), and reads decompress it faster too. Rows written
    before keep their compression; both read the same. Returns whether lz4 is set."""
    if conn.dialect.name != "postgresql" or (conn.dialect.server_version_info or (0,)) < (14,):
        return False
    table = schema.score_history_segments
    owner = conn.schema_for_object(table)
    q = conn.dialect.identifier_preparer.quote
    name = f"{q(owner)}.{q(table.name)}" if owner else q(table.name)
    try:
        with conn.begin_nested():
            conn.execute(text(f"ALTER TABLE {name} ALTER COLUMN payload SET COMPRESSION lz4"))
    except DBAPIError as exc:  # "compression method lz4 not supported": a build without it
        log.info("score history segments keep pglz compression: %s", exc.orig or exc)
        return False
    return True


def _v11_history_payload_lz4(conn: Connection) -> None:
    """Version 11: history segments compressed with lz4 on PostgreSQL
    (:func:`history_payload_lz4`); SQLite stores them as they are: nothing to do."""
    history_payload_lz4(conn)


CARRY_POINTS = 100_000

# target version -> upgrade from the version before
MIGRATIONS: dict[int, Migration] = {
    2: _v2_drift_runs,
    3: _v3_scores_active,
    4: _v4_history_per_interval,
    5: _v5_check_status_and_realised,
    6: _v6_drift_episodes,
    7: _v7_history_bucket_first,
    8: _v8_history_segments,
    9: _v9_score_times_as_integers,
    10: _v10_score_keys_compare_bytewise,
    11: _v11_history_payload_lz4,
}


def current_version(conn: Connection) -> int:
    """The stamped version, 0 if the database has no store tables yet."""
    table = schema.schema_version
    if not inspect(conn).has_table(table.name, schema=conn.schema_for_object(table)):
        return 0
    row = conn.execute(select(schema.schema_version.c.version)).first()
    return 0 if row is None else int(row[0])


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        # Transaction-scoped: released at commit. hashtext() of a constant per schema.
        target = conn.get_execution_options().get("schema_translate_map", {}).get(None) or ""
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"churn-store:{target}"}
        )
    # SQLite: the caller's BEGIN IMMEDIATE already holds the write lock.


def migrate(
    conn: Connection,
    *,
    latest: int = SCHEMA_VERSION,
    migrations: Mapping[int, Migration] = MIGRATIONS,
    now: datetime,
) -> int:
    """Bring the schema to ``latest`` inside the caller's write transaction; return it."""
    _lock(conn)
    found = current_version(conn)
    if found > latest:
        raise StoreSchemaError(
            f"store schema version {found} is newer than this code's {latest}: upgrade "
            "churn-intelligence, or point CHURN_STORE_URL at another database"
        )
    if found and found < latest:
        for version in range(found + 1, latest + 1):
            if version not in migrations:
                raise StoreSchemaError(
                    f"no migration from store schema version {version - 1} to {version}; "
                    "this is a bug: add it to pipeline.store.migrations.MIGRATIONS"
                )
            migrations[version](conn)
    if found < latest:
        schema.metadata.create_all(conn, checkfirst=True)
        if not found:  # a fresh database: what the migrations set that create_all cannot
            history_payload_lz4(conn)
        stamp = TimeCodec(conn.dialect.name).one(now)
        table = schema.schema_version
        conn.execute(table.delete())
        conn.execute(table.insert().values(id=1, version=latest, migrated_at=stamp))
    return latest
