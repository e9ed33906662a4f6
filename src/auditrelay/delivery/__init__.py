"""Delivery: one loop per destination, its sender, ledger and policy, and the supervisor.

The loop (`DeliveryLoop`) is given a `Sender` (one HTTP attempt, classified), a `Ledger`
(what is durable: cursor, dead letters, health, history) and an event source; the policy
(`decide`) says what follows each attempt. `DeliverySupervisor` runs one loop per active
destination of the store.
"""

from auditrelay.delivery.ledger import CursorCommits, Ledger, StoreLedger
from auditrelay.delivery.loop import DeliveryLoop, EventSource
from auditrelay.delivery.policy import Action, Breaker, Decision, RetryPolicy, decide, retry_delay
from auditrelay.delivery.sender import MAX_ANSWER_BYTES, Attempt, HttpSender, Sender, check_url, new_client
from auditrelay.delivery.supervisor import DeliverySupervisor
from auditrelay.delivery.tls import (
    VERIFY_OFF_WARNING,
    TlsSettingsError,
    ssl_context,
    tls_problems,
    tls_warnings,
)

__all__ = [
    "MAX_ANSWER_BYTES",
    "VERIFY_OFF_WARNING",
    "Action",
    "Attempt",
    "Breaker",
    "CursorCommits",
    "Decision",
    "DeliveryLoop",
    "DeliverySupervisor",
    "EventSource",
    "HttpSender",
    "Ledger",
    "RetryPolicy",
    "Sender",
    "StoreLedger",
    "TlsSettingsError",
    "check_url",
    "decide",
    "new_client",
    "retry_delay",
    "ssl_context",
    "tls_problems",
    "tls_warnings",
]
