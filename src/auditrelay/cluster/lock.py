"""The delivery lock: whoever holds it runs the delivery loops, and only they.

Several auditrelay processes may share one store: the workers of one `serve` on a machine,
and on PostgreSQL any number of machines. Each takes events and serves the admin API, but a
destination must be fed by one loop at a time, or every event would reach it once per
process. The lock is the operating system's or the database's own, so that it is released
the moment its holder dies, however it dies (`kill -9` included), and another process can
take over at its next try:

- SQLite: `flock` on a file beside the database (one machine by construction).
- PostgreSQL: a session-level advisory lock, held by a dedicated connection; PostgreSQL
  drops it when that connection ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Protocol

import psycopg

log = logging.getLogger(__name__)

#: The advisory lock key: any fixed 64-bit number; "auditrel" in ASCII.
ADVISORY_KEY = int.from_bytes(b"auditrel", "big") & 0x7FFF_FFFF_FFFF_FFFF


class DeliveryLock(Protocol):
    def try_acquire(self) -> bool:
        """Take the lock if it is free; never blocks for long."""

    def still_held(self) -> bool:
        """False once the lock is known lost (the connection holding it broke)."""

    def release(self) -> None: ...


class FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def still_held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


class PostgresAdvisoryLock:
    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn: psycopg.Connection | None = None

    def try_acquire(self) -> bool:
        if self._conn is not None:
            return True
        try:
            # Keepalives make a silently dead link (a partition, a server gone) show as a
            # broken connection within seconds, so `still_held` notices the loss.
            conn = psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=5,
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=3,
                application_name="auditrelay delivery lock",
            )
        except psycopg.Error as exc:
            log.warning("cannot reach PostgreSQL for the delivery lock: %s", exc)
            return False
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_KEY,)).fetchone()
        except psycopg.Error as exc:
            log.warning("cannot take the delivery lock: %s", exc)
            conn.close()
            return False
        if not row or not row[0]:
            conn.close()
            return False
        self._conn = conn
        return True

    def still_held(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
            return True
        except psycopg.Error as exc:
            log.error("the connection holding the delivery lock broke: %s", exc)
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
            return False

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()  # the session ends: PostgreSQL releases the lock
            self._conn = None
