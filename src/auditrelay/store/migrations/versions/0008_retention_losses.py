"""Events removed by retention's hard maximum before a destination had them, per destination.

Retention's hard maximum removes old events even when a paused or failing destination still
owes them; that loss is written down (how many, which range, when), never only logged.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("destination_status") as batch:
        batch.add_column(sa.Column("lost_to_retention", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("lost_from_seq", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("lost_to_seq", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("lost_at_ms", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("destination_status") as batch:
        for name in ("lost_at_ms", "lost_to_seq", "lost_from_seq", "lost_to_retention"):
            batch.drop_column(name)
