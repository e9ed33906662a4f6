"""The event log as delivery sees it: a shared in-memory tail, wake-ups, retention.

Appending and reading the stored log is SQL, in `store`; this layer sits above it and
keeps what every delivery loop of a process shares, and the group commit of ingest.
"""

from auditrelay.log.appends import IngestCommits
from auditrelay.log.retention import run_retention
from auditrelay.log.tail import LogTail
from auditrelay.log.wakeups import Wakeups

__all__ = ["IngestCommits", "LogTail", "Wakeups", "run_retention"]
