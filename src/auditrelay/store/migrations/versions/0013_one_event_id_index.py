"""One unique index for event ids, instead of two: `(id, coalesce(org, ''))`.

Ids are unique within an organization and among the instance's own events (org NULL). A
unique index on `(id, org)` cannot say the second (NULL differs from NULL), so 0010 added a
partial one on `id` for the instance's events, and every instance event was inserted into
two B-trees keyed by a random UUID: the costliest part of an append. One index on the id
and the organization with NULL read as '' (never an organization's name: names are at
least one character) says both. Existing rows already satisfy it (the two indexes held the
same rule), and the duplicate lookups (`WHERE id IN ...`) use its leading `id` as before.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ux_events_id_key", "events", ["id", sa.text("coalesce(org, '')")], unique=True)
    op.drop_index("ux_events_id_instance", "events")
    op.drop_index("ux_events_id_org", "events")


def downgrade() -> None:
    op.create_index("ux_events_id_org", "events", ["id", "org"], unique=True)
    op.create_index(
        "ux_events_id_instance",
        "events",
        ["id"],
        unique=True,
        sqlite_where=sa.text("org IS NULL"),
        postgresql_where=sa.text("org IS NULL"),
    )
    op.drop_index("ux_events_id_key", "events")
