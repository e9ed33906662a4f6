"""API tokens with roles owner and viewer, a shown prefix, last use and expiry; events
record the token that sent them.

Existing admin tokens scoped to an organization become owner tokens (what they were in
effect: an organization's admin); an instance admin token stays admin. Existing tokens
get a prefix of their role and last four characters, the only part of them known.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("prefix", sa.String(40), nullable=False, server_default=""))
        batch.add_column(sa.Column("last_used_at_ms", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("expires_at_ms", sa.BigInteger, nullable=True))
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("token_id", sa.String(36), nullable=True))
    op.execute("UPDATE api_tokens SET role = 'owner' WHERE role = 'admin' AND org IS NOT NULL")
    op.execute("UPDATE api_tokens SET prefix = 'ar_' || role || '_…' || hint WHERE prefix = ''")


def downgrade() -> None:
    op.execute("UPDATE api_tokens SET role = 'admin' WHERE role = 'owner'")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("token_id")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at_ms")
        batch.drop_column("last_used_at_ms")
        batch.drop_column("prefix")
