"""Each destination's lag, sampled once a minute beside its delivered count.

The delivery supervisor writes how many events each destination still owes, and the age of
the oldest of them, into the minute's row of `delivery_minutes`; the destination's page in
the admin panel charts them with the events delivered. Minutes before this migration have
no sample (NULL), which the chart shows as a gap, not as zero.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery_minutes") as batch:
        batch.add_column(sa.Column("lag_events", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("lag_ms", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery_minutes") as batch:
        batch.drop_column("lag_ms")
        batch.drop_column("lag_events")
