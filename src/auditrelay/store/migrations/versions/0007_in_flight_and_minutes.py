"""Health figures: the requests in flight per destination, and events delivered per minute.

The delivering process writes what it has in flight with each commit (and when a request
turns slow), so every process can show it; the per-minute counts give the rate over the
last minute and the history the admin panel charts.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("destination_status") as batch:
        batch.add_column(sa.Column("in_flight", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("oldest_in_flight_ms", sa.BigInteger, nullable=True))
    op.create_table(
        "delivery_minutes",
        sa.Column(
            "destination_id",
            sa.String(36),
            sa.ForeignKey("destinations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("minute_ms", sa.BigInteger, primary_key=True),
        sa.Column("events", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("delivery_minutes")
    with op.batch_alter_table("destination_status") as batch:
        batch.drop_column("oldest_in_flight_ms")
        batch.drop_column("in_flight")
