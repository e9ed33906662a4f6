"""Migrations upgrade an existing database in place, keeping its rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from auditrelay.config import Settings
from auditrelay.store import Database, upgrade_to_head
from auditrelay.store.migrate import MIGRATIONS_DIR
from tests.conftest import Databases


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_0003_drops_the_lease_columns_and_keeps_every_status_row(
    backend: str, databases: Databases, tmp_path: Path
) -> None:
    db = Database(Settings(database_url=databases.url(backend), data_dir=tmp_path))
    try:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with db.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0002")
        with db.engine.begin() as conn:
            marker = "?" if backend == "sqlite" else "%s"
            conn.exec_driver_sql(
                "INSERT INTO destinations (id, org, name, kind, config, secrets, verification_token,"
                " active, version, created_at_ms, updated_at_ms)"
                f" VALUES ('d1', NULL, 'n', 'http', '{{}}', {marker}, 'v', {marker}, 1, 0, 0)",
                (b"sealed", True),
            )
            conn.exec_driver_sql(
                "INSERT INTO destination_status (destination_id, cursor, delivered_total, state,"
                " consecutive_failures, lease_holder) VALUES ('d1', 42, 7, 'healthy', 0, 'old-node')"
            )
        columns = {c["name"] for c in inspect(db.engine).get_columns("destination_status")}
        assert "lease_holder" in columns, "the old schema has the lease columns"

        upgrade_to_head(db)

        columns = {c["name"] for c in inspect(db.engine).get_columns("destination_status")}
        assert "lease_holder" not in columns and "lease_expires_at_ms" not in columns
        with db.reading() as conn:
            row = conn.exec_driver_sql(
                "SELECT destination_id, cursor, delivered_total, state FROM destination_status"
            ).all()
        assert [tuple(r) for r in row] == [("d1", 42, 7, "healthy")]
    finally:
        db.dispose()
