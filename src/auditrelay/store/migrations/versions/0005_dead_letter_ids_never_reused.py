"""Dead-letter ids are never reused on SQLite (AUTOINCREMENT).

Without it, SQLite hands out the largest id plus one, so after the newest dead letter was
re-sent or discarded the next one got its id, and an admin (or a script) holding the old
id acted on another event. PostgreSQL's sequences never reuse ids: nothing to do there.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    # Rebuilt as the table definition says; sqlite_sequence starts above the rows kept.
    with op.batch_alter_table("dead_letters", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass


def downgrade() -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    with op.batch_alter_table("dead_letters", recreate="always"):
        pass
