"""Schema migrations: upgrade an existing database in place (Alembic)."""

from __future__ import annotations

from pathlib import Path

from auditrelay.store.database import Database
from auditrelay.store.locks import MIGRATION_LOCK_KEY

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def upgrade_to_head(database: Database) -> None:
    """Bring the schema to the newest migration, one process at a time on PostgreSQL.

    Alembic is imported here, not with the module: `serve` migrates once in the parent
    before the workers start, and a worker that never migrates is 12 MB lighter without it.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with database.engine.begin() as conn:
        if database.is_postgresql:
            # Several processes may start at once against one database: migrate one at a time.
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
