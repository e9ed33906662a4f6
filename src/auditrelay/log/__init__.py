"""The append-only event log: append, read after a cursor, browse."""

from auditrelay.log.event_log import (
    AppendResult,
    StoredEvent,
    append_events,
    browse,
    head_seq,
    read_after,
)
from auditrelay.log.tail import LogTail
from auditrelay.log.wakeups import Wakeups

__all__ = [
    "AppendResult",
    "LogTail",
    "StoredEvent",
    "Wakeups",
    "append_events",
    "browse",
    "head_seq",
    "read_after",
]
