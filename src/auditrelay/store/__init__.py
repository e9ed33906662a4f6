"""The database: engine, tables, migrations, and every SQL statement the service sends.

SQLite and PostgreSQL differ only inside this package. Other packages call the functions
named here, in transactions opened by `Database.read` / `Database.write`, and never see
SQLAlchemy's errors: an unreachable database is `errors.StoreUnavailable`.
"""

from auditrelay.store.clock import iso_from_ms, now_ms
from auditrelay.store.database import Database
from auditrelay.store.delivery_rows import ATTEMPT_HISTORY, pending_replay, read_status, set_state
from auditrelay.store.destination_changes import (
    create_destination,
    delete_destination,
    list_overviews,
    load_visible_destination,
    read_overview,
    request_retry_now,
    set_destination_active,
    update_destination,
)
from auditrelay.store.destination_rows import DestinationRows
from auditrelay.store.event_log import append_events, browse, head_seq, ping, read_after, store_events
from auditrelay.store.ledger_rows import (
    Progress,
    commit_progress_group,
    dead_letter_event,
    record_failed_attempt,
    record_recovered,
    record_replay_progress,
    record_slow,
)
from auditrelay.store.locks import PostgresAdvisoryLock
from auditrelay.store.migrate import upgrade_to_head
from auditrelay.store.notifications import (
    CHANNEL,
    DESTINATIONS_CHANNEL,
    PostgresListener,
    notify_destinations_changed,
)
from auditrelay.store.recovery_rows import (
    attempt_history,
    count_dead_letters,
    dead_letter_page,
    dead_letters_to_resend,
    discard_dead_letter,
    replay_jobs,
    request_replay,
    settle_resent_dead_letters,
)
from auditrelay.store.retention_rows import purge
from auditrelay.store.token_rows import (
    TokenAudit,
    add_token,
    cli_list_tokens,
    cli_revoke_token,
    count_tokens,
    create_token,
    find_principal,
    issue_first_tokens,
    issue_token,
    list_tokens,
    revoke_token,
    rotate_token,
    touch_token,
    visible_token,
)

__all__ = [
    "ATTEMPT_HISTORY",
    "CHANNEL",
    "DESTINATIONS_CHANNEL",
    "Database",
    "DestinationRows",
    "PostgresAdvisoryLock",
    "PostgresListener",
    "Progress",
    "TokenAudit",
    "add_token",
    "append_events",
    "attempt_history",
    "browse",
    "cli_list_tokens",
    "cli_revoke_token",
    "commit_progress_group",
    "count_dead_letters",
    "count_tokens",
    "create_destination",
    "create_token",
    "dead_letter_event",
    "dead_letter_page",
    "dead_letters_to_resend",
    "delete_destination",
    "discard_dead_letter",
    "find_principal",
    "head_seq",
    "iso_from_ms",
    "issue_first_tokens",
    "issue_token",
    "list_overviews",
    "list_tokens",
    "load_visible_destination",
    "notify_destinations_changed",
    "now_ms",
    "pending_replay",
    "ping",
    "purge",
    "read_after",
    "read_overview",
    "read_status",
    "record_failed_attempt",
    "record_recovered",
    "record_replay_progress",
    "record_slow",
    "replay_jobs",
    "request_replay",
    "request_retry_now",
    "revoke_token",
    "rotate_token",
    "set_destination_active",
    "set_state",
    "settle_resent_dead_letters",
    "store_events",
    "touch_token",
    "update_destination",
    "upgrade_to_head",
    "visible_token",
]
