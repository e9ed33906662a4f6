"""Initial schema: event log, tokens, destinations and their delivery status.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("head", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO log_head (id, head) VALUES (1, 0)")
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("org", sa.String(200), nullable=True),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("entity_path", sa.Text, nullable=True),
        sa.Column("occurred_at_ms", sa.BigInteger, nullable=False),
        sa.Column("received_at_ms", sa.BigInteger, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("org", sa.String(200), nullable=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("hint", sa.String(20), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("revoked_at_ms", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "destinations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("org", sa.String(200), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("secrets", sa.LargeBinary, nullable=False),
        sa.Column("verification_token", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "destination_status",
        sa.Column(
            "destination_id",
            sa.String(36),
            sa.ForeignKey("destinations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("cursor", sa.BigInteger, nullable=False),
        sa.Column("delivered_total", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("last_success_at_ms", sa.BigInteger, nullable=True),
        sa.Column("last_error_at_ms", sa.BigInteger, nullable=True),
        sa.Column("last_error_status", sa.Integer, nullable=True),
        sa.Column("last_error_message", sa.Text, nullable=True),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("next_retry_at_ms", sa.BigInteger, nullable=True),
        sa.Column("lease_holder", sa.String(100), nullable=True),
        sa.Column("lease_expires_at_ms", sa.BigInteger, nullable=True),
    )


def downgrade() -> None:
    for table in ("destination_status", "destinations", "api_tokens", "events", "log_head"):
        op.drop_table(table)
