"""The hot path: one bulk statement per batch, with no per-row SQLAlchemy work.

SQLAlchemy Core spends ~10 µs per row building parameters, more than SQLite spends
writing the row, so batches go to the driver directly:

* SQLite: ``INSERT ... VALUES (?, ...) ON CONFLICT (key) DO UPDATE ...`` through
  ``executemany`` with plain tuples;
* PostgreSQL: ``COPY`` the batch (one text payload built column-wise) into a per-session
  temporary table (``ON COMMIT DELETE ROWS``), then one ``INSERT ... SELECT ... ON
  CONFLICT ...``. (Binding Python lists as arrays for ``unnest`` was 3x slower: psycopg
  dumps text arrays element by element in Python.)

Columns come as lists of bind-ready values: times as ISO text (``TimeCodec.iso``),
JSON already serialised. Statements are built from the table definitions in
:mod:`pipeline.store.schema` and cached.

**Score history sampling happens inside the score upsert**, with no extra lookup: the
``DO UPDATE`` sets ``history_time``/``history_risk`` to the new values when the sampling
rule fires (compared with the stored row), else keeps them; a row whose
``history_time`` became its ``features_time`` is a new history point. SQLite inserts
those points with a trigger on ``scores`` (``schema.SQLITE_HISTORY_TRIGGERS``),
PostgreSQL with a data-modifying CTE over ``RETURNING`` in the same statement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import BigInteger, Boolean, Connection, Float, Integer, Table

from pipeline.store import schema as s

_NULL = r"\N"
_SPECIAL = ("\\", "\t", "\n", "\r")
SCORE_UPDATE = ("risk", "model_version", "features_time", "reasons", "plan", "monthly_revenue",
                "partition", "updated_at", "active")  # fmt: skip
# SQLite compares times through julianday() (a double: ~50 µs resolution), hence 1 ms slack.
_SQLITE_SLACK_S = 0.001


class Bulk:
    """Bulk statements for one dialect (``sqlite`` or ``postgresql``) and schema."""

    def __init__(self, dialect: Any, schema: str | None) -> None:
        self.dialect = dialect
        self.pg = dialect.name == "postgresql"
        self.q = dialect.identifier_preparer.quote
        self.schema = schema
        self._sql: dict[tuple[Any, ...], str] = {}

    def table(self, table: Table) -> str:
        name = self.q(table.name)
        return f"{self.q(self.schema)}.{name}" if self.schema else name

    def _cached(self, key: tuple[Any, ...], build: Any) -> str:
        sql = self._sql.get(key)
        if sql is None:
            sql = self._sql[key] = build()
        return sql

    def _source(self, conn: Connection, table: Table, columns: Mapping[str, list[Any]]) -> str:
        """``VALUES (?, ...)`` (SQLite, for executemany) or ``SELECT ... FROM <staged>``
        (PostgreSQL: the rows are copied into a temporary table first)."""
        names = list(columns)
        if not self.pg:
            return f"VALUES ({', '.join('?' for _ in names)})"
        tmp = self.q(f"churn_in_{table.name}")
        cols = ", ".join(self.q(c) for c in names)
        with conn.connection.driver_connection.cursor() as cur:
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {tmp} (LIKE {self.table(table)}) "
                "ON COMMIT DELETE ROWS"
            )
            cur.execute(f"DELETE FROM {tmp}")
            with cur.copy(f"COPY {tmp} ({cols}) FROM STDIN") as copy:
                copy.write(copy_text(table, columns))
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

        sql = self._cached((table.name, names, tuple(keys), tuple(update)), build)
        return max(self._run(conn, sql, columns).rowcount, 0)

    # -- scores --------------------------------------------------------------------------
    def upsert_scores(
        self,
        conn: Connection,
        columns: Mapping[str, list[Any]],
        min_change: float | None,
        max_interval_s: float | None,
    ) -> tuple[int, int]:
        """Upsert score rows (never replacing newer features); with a sampling rule
        (``min_change`` not None) also write history points. Returns (rows written,
        history points written). ``columns`` must hold ``history_time``/``history_risk``
        (equal to ``features_time``/``risk``) when sampling."""
        names = tuple(columns)
        sampling = min_change is not None and max_interval_s is not None
        source = self._source(conn, s.scores, columns)
        key = ("scores", names, min_change, max_interval_s)
        sql = self._cached(key, lambda: self._scores_sql(names, source, min_change, max_interval_s))
        if self.pg:
            written, points = self._run(conn, sql, columns).one()
            return int(written), int(points or 0)
        raw = conn.connection.driver_connection
        before = raw.total_changes  # counts trigger inserts too; rowcount does not
        written = max(self._run(conn, sql, columns).rowcount, 0)
        return written, (raw.total_changes - before - written) if sampling else 0

    def _sample_condition(self, min_change: float, max_interval_s: float) -> str:
        if self.pg:
            old = (
                f"excluded.features_time - t.history_time >= interval '{max_interval_s!r} seconds'"
            )
        else:
            slack = max_interval_s - _SQLITE_SLACK_S
            old = (
                "(julianday(excluded.features_time) - julianday(t.history_time)) * 86400.0 "
                f">= {slack!r}"
            )
        return (
            f"t.history_time IS NULL OR abs(excluded.risk - t.history_risk) > {min_change!r} "
            f"OR excluded.model_version <> t.model_version OR {old}"
        )

    def _scores_sql(
        self, names: Sequence[str], source: str, min_change: float | None,
        max_interval_s: float | None,
    ) -> str:  # fmt: skip
        q = self.q
        cols = ", ".join(q(c) for c in names)
        sets = [f"{q(c)} = excluded.{q(c)}" for c in SCORE_UPDATE]
        if min_change is not None and max_interval_s is not None:
            cond = self._sample_condition(float(min_change), float(max_interval_s))
            sets.append(f"history_time = CASE WHEN {cond} THEN excluded.features_time "
                        "ELSE t.history_time END")  # fmt: skip
            sets.append(
                f"history_risk = CASE WHEN {cond} THEN excluded.risk ELSE t.history_risk END"
            )
        sql = (
            f"INSERT INTO {self.table(s.scores)} AS t ({cols}) {source} "
            f"ON CONFLICT (user_id) DO UPDATE SET {', '.join(sets)} "
            "WHERE excluded.features_time >= t.features_time"
        )
        if not self.pg:
            return sql
        if min_change is None:
            return f"WITH u AS ({sql} RETURNING 1) SELECT count(*), 0 FROM u"
        hist = self.table(s.score_history)
        return (
            f"WITH u AS ({sql} RETURNING user_id, features_time, history_time, history_risk, "
            f"model_version), h AS (INSERT INTO {hist} (user_id, time, risk, model_version) "
            "SELECT user_id, history_time, history_risk, model_version FROM u "
            "WHERE history_time = features_time ON CONFLICT (user_id, time) DO NOTHING "
            "RETURNING 1) SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM h)"
        )


def copy_text(table: Table, columns: Mapping[str, list[Any]]) -> str:
    """Rows as PostgreSQL ``COPY`` text: tab-separated, ``\\N`` for NULL, escaped text."""
    out = []
    for name, values in columns.items():
        kind = type(table.c[name].type)
        if issubclass(kind, Float):
            out.append([_NULL if v is None else repr(float(v)) for v in values])
        elif issubclass(kind, Boolean):
            out.append([_NULL if v is None else ("t" if v else "f") for v in values])
        elif issubclass(kind, Integer | BigInteger):
            out.append([_NULL if v is None else str(int(v)) for v in values])
        else:
            text = [_NULL if v is None else v for v in values]
            joined = "".join(v for v in values if v is not None)
            if any(c in joined for c in _SPECIAL):
                text = [_NULL if v is None else _escape(v) for v in values]
            out.append(text)
    return "".join(f"{line}\n" for line in map("\t".join, zip(*out, strict=True)))


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
