"""Dead letters, delivery attempt history, replay jobs; index for time lookups in the log.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "destination_id",
            sa.String(36),
            sa.ForeignKey("destinations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("failed_at_ms", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("http_status", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=False),
    )
    op.create_index("ix_dead_letters_destination", "dead_letters", ["destination_id", "id"])
    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("destination_id", sa.String(36), nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("http_status", sa.Integer, nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("replay", sa.Boolean, nullable=False),
    )
    op.create_index("ix_delivery_attempts_destination", "delivery_attempts", ["destination_id", "id"])
    op.create_table(
        "replays",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "destination_id",
            sa.String(36),
            sa.ForeignKey("destinations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("from_seq", sa.BigInteger, nullable=False),
        sa.Column("to_seq", sa.BigInteger, nullable=False),
        sa.Column("cursor", sa.BigInteger, nullable=False),
        sa.Column("delivered", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("finished_at_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_replays_destination", "replays", ["destination_id", "state"])
    op.create_index("ix_events_received_at", "events", ["received_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_events_received_at", "events")
    for table in ("replays", "delivery_attempts", "dead_letters"):
        op.drop_table(table)
