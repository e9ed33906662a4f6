"""The delivery lock: whoever holds it runs the delivery loops, and only they.

Several auditrelay processes may share one store: the workers of one `serve` on a machine,
and on PostgreSQL any number of machines. Each takes events and serves the admin API, but a
destination must be fed by one loop at a time, or every event would reach it once per
process. The lock is the operating system's or the database's own, so that it is released
the moment its holder dies, however it dies (`kill -9` included), and another process can
take over at its next try:

- SQLite: `flock` on a file beside the database (one machine by construction).
- PostgreSQL: a session-level advisory lock, held by a dedicated connection; PostgreSQL
  drops it when that connection ends (`store.PostgresAdvisoryLock`).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Protocol


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
