"""Store URLs to SQLAlchemy engines: SQLite in WAL mode by default, PostgreSQL by URL.

* ``sqlite:///<path>``: the file's folder is created; every connection sets
  ``journal_mode=WAL`` (readers never block the writer, one writer at a time),
  ``synchronous=NORMAL`` (safe with WAL: a power cut may lose the last commits, a killed
  process loses nothing committed) and a busy timeout, so several worker processes can
  write at once and wait for each other instead of failing with "database is locked".
  A 64 MiB page cache per connection. Write transactions start with ``BEGIN IMMEDIATE`` (take the write lock first, so a
  read-then-write transaction never has to upgrade its lock and fail); reads use a plain
  ``BEGIN``. ``sqlite://`` (no path) is a private in-memory database, for tests.
* ``postgresql+psycopg://user@host:5432/db`` (``postgresql://`` means the same: psycopg 3
  is the driver we ship). An optional ``schema`` puts every table in that schema.

Every failure to open says which URL (password hidden) and what to do.

``read_only=True`` (the dashboard): SQLite opens the existing file with ``mode=ro`` (a
missing file is an error, nothing is created, no pragma that writes); PostgreSQL
sessions default to read-only transactions. Any write then fails in the database.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.pool import StaticPool

from pipeline.errors import ConfigError, StoreError
from pipeline.store.walcheckpoint import WAL_KEEP_BYTES

BUSY_TIMEOUT_S = 30.0
CACHE_KIB = 65536
PAGE_SIZE = 65536  # bytes, new SQLite files (see _on_connect)
CONNECT_TIMEOUT_S = 10
WRITE_OPTION = "churn_write"  # execution option: this transaction writes (BEGIN IMMEDIATE)
EXAMPLES = "sqlite:///data/churn.db or postgresql+psycopg://postgres@127.0.0.1:5432/churn"


_DAMAGED = ("malformed", "not a database", "file is encrypted")


def damaged(url: str, exc: DBAPIError) -> StoreError | None:
    """A SQLite file that cannot be read as a database (torn pages, overwritten bytes, not
    a database at all), as one error with the way out; None for any other error."""
    orig = getattr(exc, "orig", None)
    if not (isinstance(orig, sqlite3.DatabaseError) and any(m in str(orig).lower() for m in _DAMAGED)):
        return None
    return StoreError(
        f"store {url!r} is damaged ({orig}): SQLite cannot read it. Stop the stream and move the "
        "file (with its -wal and -shm files) aside; then restore a backup in its place, or rebuild: "
        "`churn lag --reset-offsets earliest` and `churn stream` replay the log into a new store "
        "(scores and their history come back from the events; stream metrics and drift runs start afresh)"
    )


def shown(url: URL | str) -> str:
    """The URL with its password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return str(url)


def parse_url(url: str | URL) -> URL:
    """Parse and check a store URL; ``postgresql://`` is taken as ``postgresql+psycopg://``."""
    if not isinstance(url, str | URL) or not str(url).strip():
        raise ConfigError(f"store URL {url!r} is empty: set CHURN_STORE_URL to e.g. {EXAMPLES}")
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"store URL {shown(url)!r} is not a database URL: use e.g. {EXAMPLES} (CHURN_STORE_URL)"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"store URL {shown(parsed)!r}: backend {backend!r} is not supported; "
            f"use SQLite or PostgreSQL, e.g. {EXAMPLES} (CHURN_STORE_URL)"
        )
    if backend == "postgresql" and not parsed.database:
        raise ConfigError(
            f"store URL {shown(parsed)!r} names no database: add one, e.g. {EXAMPLES.split(' or ')[1]}"
        )
    return parsed


def _sqlite_engine(
    url: URL, busy_timeout_s: float, read_only: bool = False, background_checkpoints: bool = False
) -> Engine:
    db = url.database or ""
    memory = db in ("", ":memory:") or db.startswith("file::memory:")
    kwargs: dict[str, Any] = {
        "connect_args": {"timeout": busy_timeout_s, "check_same_thread": False},
    }
    if memory and read_only:
        raise StoreError(f"store URL {shown(url)!r}: an in-memory store cannot be opened read-only")
    if memory:
        kwargs["poolclass"] = StaticPool  # one shared connection, or each would see its own DB
    elif read_only:
        path = Path(db).expanduser().resolve()
        if not path.is_file():
            raise StoreError(
                f"store {shown(url)!r} does not exist yet: run the stream (`churn stream`) to "
                "create it, or check CHURN_STORE_URL / --data-dir"
            )
        ro = f"file:{quote(str(path))}?mode=ro"
        kwargs["creator"] = lambda: sqlite3.connect(
            ro, uri=True, timeout=busy_timeout_s, check_same_thread=False
        )
        url = url.set(database=str(path))
    else:
        path = Path(db).expanduser()
        if path.is_dir():
            raise StoreError(
                f"store URL {shown(url)!r} points at a folder: name a file, e.g. "
                f"sqlite:///{path / 'churn.db'}"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder of store {shown(url)!r}: {exc.strerror or exc}; "
                "choose a writable path (CHURN_STORE_URL or CHURN_DATA_DIR)"
            ) from None
        url = url.set(database=str(path))
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            if read_only:  # the writer chose WAL; a reader must not try to change the file
                cur.execute("PRAGMA query_only = ON")
            elif not memory:
                # A new file only (an existing WAL database keeps its page size): 64 KiB
                # pages. A batch of distinct users dirties most leaf pages of the scores
                # and history B-trees whatever their size, and a commit writes every
                # dirty page to the WAL: with 16x fewer, larger pages that commit and the
                # B-tree descents cost far less (bench_store: 2-4x the rows/s of 4 KiB).
                cur.execute(f"PRAGMA page_size = {PAGE_SIZE}")
                mode = _when_unlocked(lambda: cur.execute("PRAGMA journal_mode = WAL").fetchone()[0],
                                      busy_timeout_s)  # fmt: skip
                if str(mode).lower() != "wal":
                    raise StoreError(
                        f"store {shown(url)!r} cannot use WAL mode (got {mode!r}); put the "
                        "file on a local disk (WAL does not work over network filesystems)"
                    )
            if not read_only:
                cur.execute("PRAGMA synchronous = NORMAL")
            if background_checkpoints and not read_only and not memory:
                cur.execute("PRAGMA wal_autocheckpoint = 0")  # see walcheckpoint
                # SQLite reuses a WAL file without shrinking it, and the checkpointer
                # judges the WAL by the file's size: after a completed checkpoint the next
                # write truncates it to this, so the size again tells the pages written since.
                cur.execute(f"PRAGMA journal_size_limit = {WAL_KEEP_BYTES}")
            # 64 MiB page cache per connection (default 2 MiB): a batch updates rows all
            # over the scores B-tree; with 200k users this halves the upsert time.
            cur.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _when_unlocked(step: Callable[[], Any], timeout_s: float) -> Any:
    """``step()``, retried while SQLite answers "database is locked" for up to
    ``timeout_s``. Switching a new file to WAL takes an exclusive lock and does not wait
    on the busy timeout: processes opening one fresh store together (two workers started
    at once) got "database is locked" on ~1 open in 10."""
    deadline, pause = time.monotonic() + timeout_s, 0.005
    while True:
        try:
            return step()
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def open_engine(
    url: str | URL,
    *,
    busy_timeout_s: float = BUSY_TIMEOUT_S,
    read_only: bool = False,
    background_checkpoints: bool = False,
) -> Engine:
    """An engine for ``url``, checked by connecting once. Raises ConfigError/StoreError.

    ``read_only``: never create or change anything (see the module doc).
    ``background_checkpoints`` (SQLite files): commits never checkpoint the WAL; the
    caller runs a :class:`pipeline.store.walcheckpoint.Checkpointer`."""
    parsed = parse_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = _sqlite_engine(parsed, busy_timeout_s, read_only, background_checkpoints)
        else:
            connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S}
            if read_only:
                connect_args["options"] = "-c default_transaction_read_only=on"
            engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise ConfigError(
            f"store URL {shown(parsed)!r}: its driver is not installed ({exc}); use "
            "postgresql+psycopg://... and install psycopg: pip install 'psycopg[binary]>=3.2'"
        ) from None
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except StoreError:
        engine.dispose()
        raise
    except OperationalError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StoreError(
            f"cannot open store {shown(parsed)!r}: {reason}; check that the server runs and "
            "the URL (host, port, user, database) is right, or unset CHURN_STORE_URL to use "
            "SQLite in the data folder"
        ) from None
    except DBAPIError as exc:
        engine.dispose()
        raise damaged(shown(parsed), exc) or StoreError(f"cannot open store {shown(parsed)!r}: {exc}") from None
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"cannot open store {shown(parsed)!r}: {exc}") from None
    return engine
