"""Drop the never-written lease columns of destination_status.

The delivery lock (`cluster`) decides which process delivers; per-destination leases will
come with their own table and fencing tokens when delivery spreads over several nodes.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("destination_status") as batch:
        batch.drop_column("lease_holder")
        batch.drop_column("lease_expires_at_ms")


def downgrade() -> None:
    with op.batch_alter_table("destination_status") as batch:
        batch.add_column(sa.Column("lease_holder", sa.String(100), nullable=True))
        batch.add_column(sa.Column("lease_expires_at_ms", sa.BigInteger, nullable=True))
