"""PostgreSQL's session-level advisory lock, held by a dedicated connection.

PostgreSQL releases it the moment that connection ends, however its holder dies (`kill -9`
included), so another process can take it at its next try. `cluster` uses it as the delivery
lock on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

#: The advisory lock key of the delivery lock: any fixed 64-bit number; "auditrel" in ASCII.
DELIVERY_LOCK_KEY = int.from_bytes(b"auditrel", "big") & 0x7FFF_FFFF_FFFF_FFFF
#: The transaction-level advisory lock migrations take, so processes starting together
#: against one database migrate one at a time (kept at the value earlier versions use, so
#: an old and a new process starting together still take turns).
MIGRATION_LOCK_KEY = 8_700_001


class PostgresAdvisoryLock:
    """The lock. psycopg is imported by the methods that use it, not with the module: a
    service on SQLite never loads it (10 MB a process)."""

    def __init__(self, conninfo: str, key: int = DELIVERY_LOCK_KEY) -> None:
        self._conninfo = conninfo
        self._key = key
        self._conn: psycopg.Connection | None = None

    def try_acquire(self) -> bool:
        import psycopg

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
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
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
        import psycopg

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
        import psycopg

        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()  # the session ends: PostgreSQL releases the lock
            self._conn = None
