"""Organizations, people, their memberships and sign-in sessions; event ids unique per
organization.

- `orgs`: one row per organization, keyed by its name (the name tokens, destinations and
  events carry, which never changes) with a title (what renaming changes). Every
  organization already named by a destination, a token or an event gets its row, so
  nothing existing points at an unknown organization.
- `users`, `memberships`, `sessions`: people, the role each has in each organization, and
  their signed-in sessions (stored by digest, like tokens).
- `events.id` was unique across all organizations, so one organization's id could shadow
  another's event. It becomes unique per organization: (id, org) for events of an
  organization, and id alone among the instance's own events (NULL org, which a plain
  unique index would not compare). `(org, seq)` serves the scoped head and lag.

On SQLite the events table is rebuilt (its unique constraint is part of the table): this
copies the log once, which takes a while on a large one.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_EVENT_COLUMNS = "seq, id, org, action, entity_path, occurred_at_ms, received_at_ms, body, token_id"


def upgrade() -> None:
    op.create_table(
        "orgs",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.execute(
        "INSERT INTO orgs (name, title, created_at_ms) SELECT DISTINCT org, org, 0 FROM ("
        " SELECT org FROM destinations UNION SELECT org FROM api_tokens UNION SELECT org FROM events"
        ") AS named WHERE org IS NOT NULL"
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("password_hash", sa.Text, nullable=True),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("locked", sa.Boolean, nullable=False),
        sa.Column("sso_subject", sa.String(400), nullable=True, unique=True),
        sa.Column("failed_sign_ins", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_failed_at_ms", sa.BigInteger, nullable=True),
        sa.Column("last_sign_in_at_ms", sa.BigInteger, nullable=True),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "memberships",
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("org", sa.String(200), sa.ForeignKey("orgs.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("role", sa.String(20), nullable=False),
    )
    op.create_index("ix_memberships_org", "memberships", ["org"])
    op.create_table(
        "sessions",
        sa.Column("id_sha256", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("via", sa.String(20), nullable=False),
        sa.Column("org", sa.String(200), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger, nullable=False),
        sa.Column("last_seen_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_sessions_user", "sessions", ["user_id"])

    if op.get_context().dialect.name == "sqlite":
        op.execute(
            "CREATE TABLE events_new ("
            " seq BIGINT NOT NULL PRIMARY KEY, id VARCHAR(36) NOT NULL, org VARCHAR(200),"
            " action VARCHAR(200) NOT NULL, entity_path TEXT, occurred_at_ms BIGINT NOT NULL,"
            " received_at_ms BIGINT NOT NULL, body BLOB NOT NULL, token_id VARCHAR(36))"
        )
        op.execute(f"INSERT INTO events_new ({_EVENT_COLUMNS}) SELECT {_EVENT_COLUMNS} FROM events")
        op.execute("DROP TABLE events")
        op.execute("ALTER TABLE events_new RENAME TO events")
        op.create_index("ix_events_received_at", "events", ["received_at_ms"])
    else:
        for constraint in sa.inspect(op.get_bind()).get_unique_constraints("events"):
            if constraint["column_names"] == ["id"] and constraint["name"]:
                op.drop_constraint(constraint["name"], "events", type_="unique")
    op.create_index("ux_events_id_org", "events", ["id", "org"], unique=True)
    op.create_index(
        "ux_events_id_instance",
        "events",
        ["id"],
        unique=True,
        sqlite_where=sa.text("org IS NULL"),
        postgresql_where=sa.text("org IS NULL"),
    )
    op.create_index("ix_events_org_seq", "events", ["org", "seq"])


def downgrade() -> None:
    op.drop_index("ix_events_org_seq", "events")
    op.drop_index("ux_events_id_instance", "events")
    op.drop_index("ux_events_id_org", "events")
    with op.batch_alter_table("events") as batch:
        batch.create_unique_constraint("events_id_key", ["id"])
    op.drop_table("sessions")
    op.drop_table("memberships")
    op.drop_table("users")
    op.drop_table("orgs")
