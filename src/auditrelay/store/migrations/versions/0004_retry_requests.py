"""When an admin last asked a destination to retry now (or a test send succeeded).

The delivering process compares it with what its loop has seen and wakes the loop; kept in
the database so the request reaches that process even when the signal telling it is lost.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("destination_status") as batch:
        batch.add_column(sa.Column("retry_requested_at_ms", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("destination_status") as batch:
        batch.drop_column("retry_requested_at_ms")
