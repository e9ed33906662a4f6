"""Each destination records the fingerprint of the key that sealed its secrets.

So a node started with another key can say which key is expected (never the key itself),
and `auditrelay keys rotate` can tell what still needs re-sealing. Existing rows get theirs
at the next start (`cli.prepare`), from the key that opens them.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("destinations") as batch:
        batch.add_column(sa.Column("key_id", sa.String(12), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("destinations") as batch:
        batch.drop_column("key_id")
