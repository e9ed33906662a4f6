"""The breaker's state per destination: dead letters in a row, and since when it holds.

Kept in the database so a restart (or an edit that changes nothing about where or how
events are sent) does not reset it: a misconfigured destination would otherwise set aside
another run of events after every restart.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("destination_status") as batch:
        batch.add_column(sa.Column("dead_letters_in_a_row", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("held_since_ms", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("destination_status") as batch:
        batch.drop_column("held_since_ms")
        batch.drop_column("dead_letters_in_a_row")
