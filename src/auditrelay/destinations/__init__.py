"""Destination kinds, one module each, and what they share: rendering and reading answers.

A kind is pure: importing this package loads neither the database layer nor an HTTP client.
Adding a kind means a module with a `DestinationKind` subclass and one `register` line below;
nothing else in the service names kinds.
"""

from auditrelay.destinations.base import (
    STREAMING_TOKEN_HEADER,
    USER_AGENT,
    DestinationKind,
    NoOptions,
    Outcome,
    OutgoingRequest,
    Verdict,
    classify_status,
    parse_retry_after,
    split_batch,
)
from auditrelay.destinations.filters import EventFilter
from auditrelay.destinations.headers import MASKED, check_header_text
from auditrelay.destinations.http import HttpKind
from auditrelay.destinations.registry import KINDS, hidden_strings, kind_named, kind_names, register
from auditrelay.destinations.splunk_hec import SplunkHecKind
from auditrelay.destinations.sumo_logic import SumoLogicKind

register(HttpKind())
register(SplunkHecKind())
register(SumoLogicKind())

__all__ = [
    "KINDS",
    "MASKED",
    "STREAMING_TOKEN_HEADER",
    "USER_AGENT",
    "DestinationKind",
    "EventFilter",
    "HttpKind",
    "NoOptions",
    "Outcome",
    "OutgoingRequest",
    "SplunkHecKind",
    "SumoLogicKind",
    "Verdict",
    "check_header_text",
    "classify_status",
    "hidden_strings",
    "kind_named",
    "kind_names",
    "parse_retry_after",
    "register",
    "split_batch",
]
