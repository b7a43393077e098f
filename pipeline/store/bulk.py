"""The hot path: one bulk statement per batch, with no per-row SQLAlchemy work.

SQLAlchemy Core spends ~10 µs per row building parameters, more than SQLite spends
writing the row, so batches go to the driver directly:

* SQLite: ``INSERT ... VALUES (?, ...) ON CONFLICT (key) DO UPDATE ...`` through
  ``executemany`` with plain tuples; scores ``ROWS_PER_STATEMENT`` rows per statement
  (``Bulk._sqlite_scores``);
* PostgreSQL: ``COPY`` the batch into a per-session temporary table (``ON COMMIT DELETE
  ROWS``), then one ``INSERT ... SELECT ... ON CONFLICT ...``. Scores go as a **binary**
  ``COPY`` payload built column-wise with numpy (:mod:`pipeline.store.pgcopy`): on a
  10,000-row batch ~8 ms of client CPU instead of ~14 for the text payload, and the
  server's ``COPY`` ~8 ms instead of 13-20 (no float or timestamp text to parse). Other
  tables use one text payload built column-wise (``copy_text``). (Binding Python lists
  as arrays for ``unnest`` was 3x slower: psycopg dumps text arrays element by element
  in Python.)

Rows arrive sorted by ``user_id`` (``rows.latest``), so SQLite's executemany and
PostgreSQL's scan of the staged rows walk the scores B-tree in key order. (An explicit
``ORDER BY user_id`` in the PostgreSQL ``INSERT .. SELECT`` measured no different: the
staged rows are in that order already.)

Columns come as lists of bind-ready values: times as ISO text (``TimeCodec.iso``),
JSON already serialised. Statements are built from the table definitions in
:mod:`pipeline.store.schema` and cached.

**Score history** is not written here: each write appends one columnar segment row
(:mod:`pipeline.store.segments`, ``Store._append_segment``) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, Boolean, Connection, Float, Integer, Table
from sqlalchemy.dialects import postgresql

from pipeline.store import pgcopy
from pipeline.store import schema as s
from pipeline.store.rows import ScoreBatch, TimeCodec, one_value

Statement = tuple[str, Mapping[str, Any]]  # driver-level SQL (``%(name)s``) and its parameters

_NULL = r"\N"
_SPECIAL = ("\\", "\t", "\n", "\r")
SCORE_COLUMNS = ("user_id", "risk", "model_version", "features_time", "reasons", "plan",
                 "monthly_revenue", "partition", "updated_at", "active")  # fmt: skip
ROWS_PER_STATEMENT = 100  # SQLite score upserts (see Bulk._sqlite_scores)
SLICE_ROWS = 10_000  # SQLite score rows converted at a time, inside one transaction
# PostgreSQL score rows per binary COPY part: the server parses a part while the next is
# built. 10,000-row batches, 2,500 vs one part: ~2-4 ms less of ~70 (bench_store A/B).
COPY_PART_ROWS = 2_500
SCORE_UPDATE = ("risk", "model_version", "features_time", "reasons", "plan", "monthly_revenue",
                "partition", "updated_at", "active")  # fmt: skip


class Bulk:
    """Bulk statements for one dialect (``sqlite`` or ``postgresql``) and schema."""

    def __init__(self, dialect: Any, schema: str | None) -> None:
        self.dialect = dialect
        self.pg = dialect.name == "postgresql"
        self.q = dialect.identifier_preparer.quote
        self.schema = schema
        self.codec = TimeCodec(dialect.name)
        self._sql: dict[tuple[Any, ...], str] = {}

    def table(self, table: Table) -> str:
        name = self.q(table.name)
        return f"{self.q(self.schema)}.{name}" if self.schema else name

    def cached(self, key: tuple[Any, ...], build: Any) -> str:
        """The statement cached under ``key``, built by ``build()`` the first time (the
        store's segment inserts share this cache with the bulk statements)."""
        sql = self._sql.get(key)
        if sql is None:
            sql = self._sql[key] = build()
        return sql

    def _source(
        self,
        conn: Connection,
        table: Table,
        columns: Mapping[str, list[Any]],
    ) -> str:
        """``VALUES (?, ...)`` (SQLite, for executemany) or ``SELECT ... FROM <staged>``
        (PostgreSQL: the rows are copied into a temporary table first)."""
        names = list(columns)
        if not self.pg:
            return f"VALUES ({', '.join('?' for _ in names)})"
        return self._stage(conn, table, names, copy_text(table, columns))

    def _stage(self, conn: Connection, table: Table, names: Sequence[str],
               data: str | Iterable[bytes]) -> str:  # fmt: skip
        """PostgreSQL: ``COPY`` ``data`` (text, or the parts of a binary payload) into
        the session's temporary twin of ``table``; returns the ``SELECT`` that reads it.

        Binary parts are sent as they are built: the server parses one part while the
        next is built here (both sides are CPU-bound for a few ms per 10,000 rows)."""
        tmp = self.staged(table)
        cols = ", ".join(self.q(c) for c in names)
        binary = "" if isinstance(data, str) else " (FORMAT BINARY)"
        with conn.connection.driver_connection.cursor() as cur:
            # one round trip (without parameters the simple protocol takes both statements)
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {tmp} (LIKE {self.table(table)}) "
                f"ON COMMIT DELETE ROWS; DELETE FROM {tmp}"
            )
            with cur.copy(f"COPY {tmp} ({cols}) FROM STDIN{binary}") as copy:
                for part in [data] if isinstance(data, str) else data:
                    copy.write(part)
        return f"SELECT {cols} FROM {tmp}"

    def _run(self, conn: Connection, sql: str, columns: Mapping[str, list[Any]]) -> Any:
        if self.pg:
            return conn.exec_driver_sql(sql)
        return conn.exec_driver_sql(sql, list(zip(*columns.values(), strict=True)))

    def upsert(
        self,
        conn: Connection,
        table: Table,
        columns: Mapping[str, list[Any]],
        keys: Sequence[str],
        update: Sequence[str] = (),
    ) -> int:
        """Insert rows given column-wise; on a key conflict update the ``update`` columns
        (do nothing if empty). Returns the driver's row count."""
        if not columns or not len(next(iter(columns.values()))):
            return 0
        names = tuple(columns)
        source = self._source(conn, table, columns)

        def build() -> str:
            q = self.q
            cols = ", ".join(q(c) for c in names)
            sql = f"INSERT INTO {self.table(table)} ({cols}) {source} "
            sql += f"ON CONFLICT ({', '.join(q(k) for k in keys)}) "
            if not update:
                return sql + "DO NOTHING"
            return sql + "DO UPDATE SET " + ", ".join(f"{q(c)} = excluded.{q(c)}" for c in update)

        sql = self.cached((table.name, names, tuple(keys), tuple(update)), build)
        return max(self._run(conn, sql, columns).rowcount, 0)

    # -- scores --------------------------------------------------------------------------
    def upsert_scores(self, conn: Connection, batch: ScoreBatch, updated_at_us: int,
                      then: Callable[[], Sequence[Statement]] | None = None,
                      merge: bool = True) -> int:  # fmt: skip
        """Upsert current scores (one row per user, ``rows.latest``), never replacing newer
        features; ``updated_at_us``: the write's wall clock (int64 microseconds, UTC).
        Returns rows written.

        PostgreSQL stages the rows with a binary ``COPY`` (:mod:`pipeline.store.pgcopy`)
        and sends the upsert in pipeline mode: ``then`` (if given) builds the statements
        that follow it in the transaction (the history segment) while the server applies
        the upsert (~40 ms of a 10,000-row write, this side idle until now), and they go
        without a round trip of their own. Elsewhere the caller runs its statements after.
        (bench_store, interleaved with the previous code, two sets: scores + history
        142.1k -> 146.9k and 144.7k -> 147.2k rows/s; scores only unchanged.)

        On PostgreSQL 15 or later the staged rows are applied with ``MERGE`` (``merge``,
        the default), else ``INSERT .. ON CONFLICT DO UPDATE``; both keep the newer
        ``features_time``. ``ON CONFLICT`` locks each conflicting row (a WAL record of its
        own) before updating it, ``MERGE`` updates the row its join found: 10,000 of
        200,000 users, interleaved, 12 pairs of 7-batch medians: scores + history 95-96k
        -> 102-105k rows/s, higher in 9 of the 12 (a slow hour of this host). ``MERGE``
        does not wait out a concurrent insert of the same new user as ``ON CONFLICT``
        does: it fails with a unique violation, and the caller retries the write with
        ``merge=False`` (:meth:`pipeline.store.Store.upsert_scores`)."""
        if not self.pg:
            # Converted and sent a slice at a time, in the caller's one transaction: the
            # conversions are C loops holding the GIL (ISO text, tuples), and a stream
            # worker's batch loop must not wait a whole flush's worth of them.
            written = 0
            for lo in range(0, len(batch), SLICE_ROWS):
                part = batch.slice(lo, lo + SLICE_ROWS)
                written += self._sqlite_scores(conn, score_columns(part, self.codec, updated_at_us))
            return written
        source = self._stage(conn, s.scores, SCORE_COLUMNS, score_copy(batch, updated_at_us))
        merge = merge and self.can_merge(conn)
        sql = self.cached(("scores", "pg", merge), lambda: self._merge_sql() if merge else self._score_sql(source))
        if then is None:
            return max(conn.exec_driver_sql(sql).rowcount, 0)
        dc = conn.connection.driver_connection
        cursors = [dc.cursor()]
        try:
            with dc.pipeline():  # sent now; the results are read when the block ends
                cursors[0].execute(sql)
                for stmt, params in then():
                    cursors.append(dc.cursor())
                    cursors[-1].execute(stmt, params)
            return max(cursors[0].rowcount, 0)
        finally:
            for cur in cursors:
                cur.close()

    def can_merge(self, conn: Connection) -> bool:
        """PostgreSQL 15 or later (``MERGE``)."""
        return self.pg and (conn.dialect.server_version_info or (0,)) >= (15,)

    def _merge_sql(self) -> str:
        """``MERGE`` of the staged scores (:meth:`_stage`'s table) by user id."""
        q = self.q
        cols = ", ".join(q(c) for c in SCORE_COLUMNS)
        sets = ", ".join(f"{q(c)} = s.{q(c)}" for c in SCORE_UPDATE)
        return (
            f"MERGE INTO {self.table(s.scores)} AS t USING {self.staged(s.scores)} AS s "
            f"ON t.user_id = s.user_id WHEN MATCHED AND s.features_time >= t.features_time "
            f"THEN UPDATE SET {sets} WHEN NOT MATCHED THEN INSERT ({cols}) "
            f"VALUES ({', '.join('s.' + q(c) for c in SCORE_COLUMNS)})"
        )

    def staged(self, table: Table) -> str:
        """The session's temporary twin of ``table`` that :meth:`_stage` fills."""
        return self.q(f"churn_in_{table.name}")

    def _score_sql(self, source: str) -> str:
        q = self.q
        sets = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in SCORE_UPDATE)
        return (
            f"INSERT INTO {self.table(s.scores)} AS t ({', '.join(q(c) for c in SCORE_COLUMNS)}) "
            f"{source} ON CONFLICT (user_id) DO UPDATE SET {sets} "
            "WHERE excluded.features_time >= t.features_time"
        )

    def _sqlite_scores(self, conn: Connection, columns: Mapping[str, list[Any]]) -> int:
        """SQLite: ``ROWS_PER_STATEMENT`` rows per ``INSERT`` (numbered parameters bound
        column by column: ``?1..?100`` the user ids, ``?101..?200`` the risks, ...), the
        remainder one row per execution. The sqlite3 module's per-execution cost (reset,
        step, a parameter tuple per row) was more than half of a one-row ``executemany``:
        10,000 rows 52-66 ms -> 29-35 ms on this machine.

        A column with one value in every row (``SHARED_COLUMNS``: the write's
        ``updated_at`` always; usually the model version and ``active``; a checkpoint's
        flush has one partition) is bound once per statement, not once per row: binding
        is a C call and a string copy per value. ``bench_store``'s batches (10,000 distinct
        users of 200,000, scores + history; one model version, plan and ``active``),
        sharing on and off interleaved batch by batch in one process, 40 batches, two
        runs on a slow hour of this host: this function's CPU 59.5 -> 46.2 and 64.6 ->
        48.3 ms, the whole write 103.7 -> 89.6 and 107.9 -> 93.5 ms (wall)."""
        k = ROWS_PER_STATEMENT
        n = len(columns["user_id"])
        full = n - n % k
        written = 0
        if full:
            shared = tuple(c for c in SHARED_COLUMNS if one_value(columns[c]))
            per_row = [_bindable(c, columns[c]) for c in SCORE_COLUMNS if c not in shared]
            once = tuple(columns[c][0] for c in shared)
            sql = self.cached(("scores", "sqlite", k, shared), lambda: self._score_sql(_numbered(k, shared)))
            params = [tuple(chain.from_iterable(v[lo : lo + k] for v in per_row)) + once
                      for lo in range(0, full, k)]  # fmt: skip
            written += max(conn.exec_driver_sql(sql, params).rowcount, 0)
        if full < n:
            values = [_bindable(c, columns[c][full:]) for c in SCORE_COLUMNS]
            sql = self.cached(("scores", "sqlite", 1, ()), lambda: self._score_sql(_numbered(1)))
            rest = list(zip(*values, strict=True))
            written += max(conn.exec_driver_sql(sql, rest).rowcount, 0)
        return written


# Columns that may be bound once per statement when every row has the same value: text,
# integers (times are int64 microseconds on SQLite), booleans and NULL, for which equal
# values are the same stored value. Not the floats (0.0 == -0.0).
SHARED_COLUMNS = ("model_version", "features_time", "plan", "partition", "updated_at", "active")
# Columns bound per row whose NULL goes as '' and is made NULL again by the statement
# (``NULLIF(?, '')``; reasons are JSON text, never empty). The sqlite3 module binds int,
# float and str of their exact types directly; anything else (None, bool, a str subclass)
# goes through its adapter lookup first: ~600 ns a value here, against ~20 for NULLIF.
# Most rows have no reasons, so that was ~6 ms of a 10,000-row write.
EMPTY_IS_NULL = ("reasons",)


def _bindable(name: str, values: list[Any]) -> list[Any]:
    """``values`` of score column ``name`` as the sqlite3 module binds without its adapter
    lookup (see ``EMPTY_IS_NULL``): exact ``str`` or ``''`` for the reasons, ``int`` for
    booleans (stored the same: SQLite has no boolean type)."""
    if name in EMPTY_IS_NULL:
        return ["" if v is None else v if type(v) is str else str.__str__(v) for v in values]
    if name == "active":
        return list(map(int, values))
    return values


def _numbered(k: int, shared: Sequence[str] = ()) -> str:
    """``VALUES`` of ``k`` rows: the parameters of the columns not ``shared`` numbered
    column-major (row ``i`` of the ``j``-th such column is ``?{j*k+i+1}``), then one
    parameter per ``shared`` column, the same in every row."""
    per_row = [c for c in SCORE_COLUMNS if c not in shared]
    base = len(per_row) * k

    def param(c: str, i: int) -> str:
        if c in shared:
            return f"?{base + shared.index(c) + 1}"
        p = f"?{per_row.index(c) * k + i + 1}"
        return f"NULLIF({p}, '')" if c in EMPTY_IS_NULL else p

    rows = ("(" + ", ".join(param(c, i) for c in SCORE_COLUMNS) + ")" for i in range(k))
    return "VALUES " + ", ".join(rows)


def score_columns(b: ScoreBatch, codec: TimeCodec, updated_at_us: int) -> dict[str, list[Any]]:
    """The ``scores`` columns of ``b`` as lists of bind-ready values (times as
    ``TimeCodec.score_times``: int64 microseconds on SQLite)."""
    now = codec.score_times(np.array([updated_at_us], dtype="datetime64[us]"))
    return {
        "user_id": b.user_id,
        "risk": b.risk.tolist(),
        "model_version": b.model_version,
        "features_time": codec.score_times(b.features_time),
        "reasons": b.reasons,
        "plan": b.plan,
        "monthly_revenue": b.monthly_revenue,
        "partition": b.partition,
        "updated_at": now * len(b),
        "active": b.active,
    }


def score_copy(b: ScoreBatch, updated_at_us: int, part_rows: int = COPY_PART_ROWS) -> Iterator[bytes]:
    """The ``scores`` rows of ``b`` as a binary ``COPY`` payload, columns in
    ``SCORE_COLUMNS`` order, built and yielded ``part_rows`` rows at a time (the parts,
    concatenated, are one payload). A value the payload cannot carry (a partition
    outside int4) is an ``InvalidRowError`` here, before any part is built or sent."""
    pgcopy.int4(b.partition, "partition")  # the whole batch's check, ~0.3 ms per 10,000
    return _score_parts(b, updated_at_us, part_rows)


def _score_parts(b: ScoreBatch, updated_at_us: int, part_rows: int) -> Iterator[bytes]:
    n = len(b)
    for lo in range(0, max(n, 1), part_rows):
        hi = min(lo + part_rows, n)
        part = b if (lo, hi) == (0, n) else b.slice(lo, hi)
        yield _score_payload(part, updated_at_us, head=lo == 0, tail=hi == n)


def _score_payload(b: ScoreBatch, updated_at_us: int, *, head: bool, tail: bool) -> bytes:
    now = np.full(len(b), updated_at_us, dtype=np.int64).view("datetime64[us]")
    return pgcopy.payload([
        pgcopy.text(b.user_id),
        pgcopy.float8(b.risk),
        pgcopy.text(b.model_version),
        pgcopy.timestamptz(b.features_time),
        pgcopy.text(b.reasons, jsonb=True),
        pgcopy.text(b.plan),
        pgcopy.float8(b.monthly_revenue),
        pgcopy.int4(b.partition, "partition"),
        pgcopy.timestamptz(now),
        pgcopy.boolean(b.active),
    ], head=head, tail=tail)  # fmt: skip


_PG = postgresql.dialect()


def copy_text(table: Table, columns: Mapping[str, list[Any]]) -> str:
    """Rows as PostgreSQL ``COPY`` text: tab-separated, ``\\N`` for NULL, escaped text.

    Built column by column with C-level ``map``/``join``; columns of few distinct values
    convert each once. The float ``repr`` of the risks is the largest remaining part
    (~1 us a value)."""
    out = []
    for name, values in columns.items():
        kind = type(table.c[name].type.dialect_impl(_PG))  # the PostgreSQL variant's type
        nulls = None in values
        if issubclass(kind, Float):
            conv: Any = _float_text
        elif issubclass(kind, Boolean):
            conv = _bool_text
        elif issubclass(kind, Integer | BigInteger):
            conv = _int_text
        else:
            present = [v for v in values if v is not None] if nulls else values
            joined = "".join(present)
            if any(c in joined for c in _SPECIAL):
                out.append([_NULL if v is None else _escape(v) for v in values])
            else:
                out.append([_NULL if v is None else v for v in values] if nulls else values)
            continue
        out.append(_convert(values, conv, nulls))
    if not out or not out[0]:
        return ""
    return "\n".join(map("\t".join, zip(*out, strict=True))) + "\n"


def _convert(values: list[Any], conv: Any, nulls: bool) -> list[str]:
    """``conv`` over ``values`` (None -> ``\\N``). Columns of few distinct values (plan
    prices, partitions) convert each distinct value once and look the rest up."""
    if len(values) >= 256 and len(set(values[:256])) <= 32:
        distinct = set(values)
        if len(distinct) <= len(values) // 8:
            text = {v: _NULL if v is None else conv(v) for v in distinct}
            return list(map(text.__getitem__, values))
    if nulls:
        return [_NULL if v is None else conv(v) for v in values]
    return list(map(conv, values))


def _float_text(v: Any) -> str:
    return repr(float(v))


def _int_text(v: Any) -> str:
    return str(int(v))


def _bool_text(v: Any) -> str:
    return "t" if v else "f"


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
