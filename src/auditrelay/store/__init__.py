"""Database engine, tables and migrations, for SQLite and PostgreSQL."""

from auditrelay.store.database import Database
from auditrelay.store.migrate import upgrade_to_head

__all__ = ["Database", "upgrade_to_head"]
