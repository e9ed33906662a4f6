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
def test_upgrading_from_0002_drops_the_lease_columns_and_keeps_every_row(
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
            conn.exec_driver_sql(
                "INSERT INTO dead_letters (destination_id, seq, event_id, body, failed_at_ms, attempts,"
                f" error) VALUES ('d1', 40, 'e40', {marker}, 0, 3, 'refused')",
                (b"{}",),
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
            letters = conn.exec_driver_sql("SELECT id, seq, event_id FROM dead_letters").all()
        assert [tuple(r) for r in row] == [("d1", 42, 7, "healthy")]
        assert [tuple(r)[1:] for r in letters] == [(40, "e40")], "dead letters kept through 0005"
    finally:
        db.dispose()


def test_dead_letter_ids_are_never_reused(databases: Databases, tmp_path: Path) -> None:
    """SQLite would hand out the id of a removed newest row again; AUTOINCREMENT does not."""
    import dataclasses

    from auditrelay.security import SecretBox
    from auditrelay.store import DestinationRows
    from auditrelay.store.delivery_rows import add_dead_letter, list_dead_letters, remove_dead_letters
    from tests.destinations.test_kinds import destination

    db = Database(Settings(data_dir=tmp_path))
    upgrade_to_head(db)
    rows = DestinationRows(SecretBox.from_settings("", tmp_path, may_generate=True))
    try:
        with db.writing() as conn:
            rows.insert(conn, dataclasses.replace(destination("http"), id="d1"), 0)
            for seq in (1, 2):
                add_dead_letter(conn, "d1", seq, f"e{seq}", b"{}", 3, 400, "refused")
            newest = max(d.id for d in list_dead_letters(conn, "d1", 0, 10))
            remove_dead_letters(conn, "d1", [newest])
            add_dead_letter(conn, "d1", 3, "e3", b"{}", 3, 400, "refused")
            ids = [d.id for d in list_dead_letters(conn, "d1", 0, 10)]
        assert newest not in ids and len(ids) == 2 and max(ids) > newest
    finally:
        db.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrading_from_0012_keeps_the_events_and_each_id_unique_per_organization(
    backend: str, databases: Databases, tmp_path: Path
) -> None:
    """0013 replaces the two unique indexes of event ids by one: the same rule, kept rows."""
    from sqlalchemy.exc import IntegrityError

    db = Database(Settings(database_url=databases.url(backend), data_dir=tmp_path))
    marker = "?" if backend == "sqlite" else "%s"
    insert = (
        "INSERT INTO events (seq, id, org, action, occurred_at_ms, received_at_ms, body)"
        f" VALUES ({marker}, {marker}, {marker}, 'a.b', 0, 0, {marker})"
    )
    try:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with db.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0012")
        with db.engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO orgs (name, title, created_at_ms) VALUES ('acme', 'Acme', 0)")
            conn.exec_driver_sql(insert, (1, "e1", None, b"{}"))
            conn.exec_driver_sql(insert, (2, "e1", "acme", b"{}"))

        upgrade_to_head(db)

        catalog = (
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
            if backend == "sqlite"
            else "SELECT indexname FROM pg_indexes WHERE tablename = 'events'"
        )
        with db.reading() as conn:  # reflection skips expression indexes: the catalog itself
            indexes = set(conn.exec_driver_sql(catalog).scalars())
        assert "ux_events_id_key" in indexes
        assert not indexes & {"ux_events_id_org", "ux_events_id_instance"}
        with db.reading() as conn:
            kept = conn.exec_driver_sql("SELECT seq, id, org FROM events ORDER BY seq").all()
        assert [tuple(r) for r in kept] == [(1, "e1", None), (2, "e1", "acme")]
        for seq, org in ((3, None), (4, "acme")):  # the instance's and an organization's
            with pytest.raises(IntegrityError), db.engine.begin() as conn:
                conn.exec_driver_sql(insert, (seq, "e1", org, b"{}"))
        with db.engine.begin() as conn:
            conn.exec_driver_sql(insert, (5, "e2", None, b"{}"))
            conn.exec_driver_sql(insert, (6, "e2", "acme", b"{}"))
    finally:
        db.dispose()
