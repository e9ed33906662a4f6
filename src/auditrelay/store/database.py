"""The database boundary: one engine, SQLite/PostgreSQL differences kept here.

Queries are plain synchronous SQLAlchemy Core functions taking a connection, defined in the
other modules of this package and run off the event loop in a small thread pool:
`await db.read(fn, ...)` runs `fn(conn, ...)` in a read transaction, `await db.write(fn, ...)`
in a write transaction. One hop per transaction keeps the async side cheap and lets the CLI
use the very same functions without an event loop. Database errors never leave this package
as SQLAlchemy's: an unreachable or failing database is `StoreUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import QueuePool

from auditrelay.config import Settings
from auditrelay.errors import StoreUnavailable

P = ParamSpec("P")
T = TypeVar("T")

# Python's sqlite3 binds str, int, float and bytearray parameters directly, but looks up an
# adapter for anything else, bytes and None included: failed lookups of `__adapt__` and
# `__conform__`, raising and formatting an AttributeError, for every event body and every
# NULL column inserted. Registered, both are found at once and bound as they are (`bytes()`
# of a bytes object is that object). Process-wide, and meant to be: no other adapter is wanted.
sqlite3.register_adapter(bytes, bytes)
sqlite3.register_adapter(type(None), lambda value: value)


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """SQLAlchemy's "the database is unreachable or failed" becomes the project's own error."""
    try:
        yield
    except OperationalError as exc:
        # The cause (host names, SQL) goes to the log with the chained exception, not to callers.
        raise StoreUnavailable("the database is unavailable; nothing was stored, retry shortly") from exc


def load_driver(settings: Settings) -> None:
    """Import the SQLAlchemy dialect and the driver the store will use, without connecting:
    the parent of forked workers loads them once, so they share the pages (on PostgreSQL,
    psycopg and its dialect are about 10 MB per process otherwise)."""
    make_url(settings.resolved_database_url).get_dialect().import_dbapi()


class Database:
    def __init__(self, settings: Settings, pool_size: int = 8) -> None:
        self.url = settings.resolved_database_url
        self.is_sqlite = self.url.startswith("sqlite")
        self.is_postgresql = not self.is_sqlite
        self._write_lock_fd: int | None = None
        if self.is_sqlite:
            # Audit data is sensitive: a new data directory is readable by its owner only.
            settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.engine = _sqlite_engine(self.url, settings.sqlite_synchronous, pool_size)
            lock_path = self.sqlite_path.with_name(self.sqlite_path.name + ".write-lock")
            self._write_lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        else:
            self.engine = create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=4,
                pool_pre_ping=True,
                # No server-side prepared statements: their generic plan for "seq > $1
                # ORDER BY seq LIMIT $2" cannot see how selective the cursor is, and as the log
                # grows PostgreSQL picks a parallel scan of it. Custom plans use the index.
                connect_args={"prepare_threshold": None},
            )
            _results_in_binary_on_request(self.engine)
        # SQLite has one writer at a time. Our writers queue on a lock instead of spinning in
        # SQLite's busy handler, which sleeps in coarse steps (up to 100 ms) and adds latency:
        # a thread lock within the process, and `flock` on a file between the processes
        # serving one database (a blocked `flock` wakes the moment the holder lets go).
        self._sqlite_write_lock = threading.Lock()
        #: The same pool, for reads outside a transaction (`read_latest`).
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="db")

    @contextlib.contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction: BEGIN IMMEDIATE on SQLite, an ordinary one on PostgreSQL."""
        if self.is_sqlite:
            with (
                _translated(),
                self._sqlite_write_lock,
                self._between_processes(),
                self.engine.connect() as conn,
            ):
                # `info` lives with the pooled DBAPI connection: set for this checkout only.
                conn.info["write"] = True
                try:
                    with conn.begin():
                        yield conn
                finally:
                    conn.info.pop("write", None)
        else:
            with _translated(), self.engine.begin() as conn:
                yield conn

    @contextlib.contextmanager
    def _between_processes(self) -> Iterator[None]:
        assert self._write_lock_fd is not None
        fcntl.flock(self._write_lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._write_lock_fd, fcntl.LOCK_UN)

    @property
    def sqlite_path(self) -> Path:
        """The SQLite database file; other per-database files (locks, signals) sit beside it."""
        database = self.engine.url.database
        if not self.is_sqlite or not database or database == ":memory:":
            raise ValueError("not a SQLite database file")
        return Path(database).resolve()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot), ended at the end: rolled back on
        SQLite; committed on PostgreSQL, where it has nothing to undo either, because psycopg
        drops the connection's prepared statements (`PREPARED`) at every rollback and sends
        one more round trip to say so."""
        with _translated(), self.engine.connect() as conn:
            yield conn
            if self.is_postgresql:
                conn.commit()
            else:
                conn.rollback()

    @property
    def conninfo(self) -> str:
        """The PostgreSQL connection string for psycopg itself (locks, LISTEN)."""
        return self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def read(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(conn, ...)` in a read transaction, in the pool, without blocking the event loop."""

        def transaction() -> T:
            with self.reading() as conn:
                return fn(conn, *args, **kwargs)

        return await self.run(transaction)

    async def read_latest(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`fn(conn, ...)` outside a transaction, each statement seeing the latest commits: for
        a read of one statement (or of several that need not agree), such as the log tail's.

        On PostgreSQL a read transaction costs two more round trips (BEGIN, ROLLBACK) to the
        server than the query itself; the tail reads once per commit, on the latency path."""

        def statements() -> T:
            if self.is_postgresql:
                with _translated(), self._autocommit.connect() as conn:
                    return fn(conn, *args, **kwargs)
            with _translated(), self.engine.connect() as conn:
                # SQLite is in process: no round trip to save; its reads keep their snapshot.
                result = fn(conn, *args, **kwargs)
                conn.rollback()
                return result

        return await self.run(statements)

    async def write(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`fn(conn, ...)` in a write transaction, in the pool, without blocking the event loop."""

        def transaction() -> T:
            with self.writing() as conn:
                return fn(conn, *args, **kwargs)

        return await self.run(transaction)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking function of this package in the pool (one that opens its own
        transactions, such as a retention pass)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def dispose(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)
        self.engine.dispose()
        if self._write_lock_fd is not None:
            os.close(self._write_lock_fd)
            self._write_lock_fd = None


#: Execution option: PostgreSQL sends this statement's results in its binary format.
BINARY_RESULTS = "auditrelay_binary_results"
#: An execution option: on PostgreSQL, prepare the statement on the server and keep it (per
#: connection). Only for statements whose generic plan is the right one whatever the
#: parameters, such as ingest's: its 500-id duplicate lookup, planned afresh each time,
#: cost PostgreSQL 10.5 CPU-µs per event, prepared 4.5. Others stay unprepared (see
#: `Database.__init__`).
PREPARED = "auditrelay_prepared"


def _results_in_binary_on_request(engine: Engine) -> None:
    """Statements run with the `BINARY_RESULTS` option get their rows in PostgreSQL's binary
    format. In the text format a `bytea` value comes hex-escaped, twice its size: a read of
    16 MiB of bodies held a 32 MiB result in libpq, plus the 16 MiB decoded from it, and
    the decoding's CPU. In binary the bytes come as they are stored.

    Statements run with `PREPARED` are prepared on the server: psycopg's threshold is set
    before each statement SQLAlchemy executes and set back after it. Only the driver's own
    statements (the pool's ping) bypass the hooks: one after a failed prepared statement
    may be prepared too, which is harmless."""
    from psycopg.pq import Format

    @event.listens_for(engine, "before_cursor_execute")
    def _per_statement(
        _conn: Connection, cursor: Any, _sql: str, _params: Any, context: Any, _many: bool
    ) -> None:
        options = context.execution_options if context is not None else {}
        if options.get(BINARY_RESULTS):
            cursor.format = Format.BINARY
        cursor.connection.prepare_threshold = 0 if options.get(PREPARED) else None

    @event.listens_for(engine, "after_cursor_execute")
    def _unprepared_again(
        _conn: Connection, cursor: Any, _sql: str, _params: Any, _context: Any, _many: bool
    ) -> None:
        cursor.connection.prepare_threshold = None


def _sqlite_engine(url: str, synchronous: str, pool_size: int) -> Engine:
    engine = create_engine(
        url,
        poolclass=QueuePool,
        pool_size=pool_size,
        max_overflow=4,
        connect_args={"check_same_thread": False, "timeout": 30},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit transactions get in the way
        # of BEGIN IMMEDIATE), then set the pragmas every connection needs.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front (no deadlock-prone lock upgrade later);
        # readers get a deferred transaction, i.e. a consistent WAL snapshot.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")

    return engine
