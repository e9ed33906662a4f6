"""Destination kinds (one module each), their settings, and the filter they apply.

Adding a kind means adding a module with a `DestinationKind` subclass and naming it in
`KINDS`; the delivery loop does not change.
"""

from auditrelay.destinations.base import DestinationKind, Outcome, OutgoingRequest, Verdict
from auditrelay.destinations.filters import EventFilter
from auditrelay.destinations.http import HttpKind
from auditrelay.destinations.model import BatchSettings, Destination, Header
from auditrelay.destinations.splunk_hec import SplunkHecKind
from auditrelay.destinations.sumo_logic import SumoLogicKind

KINDS: dict[str, DestinationKind] = {
    kind.name: kind for kind in (HttpKind(), SplunkHecKind(), SumoLogicKind())
}

__all__ = [
    "KINDS",
    "BatchSettings",
    "Destination",
    "DestinationKind",
    "EventFilter",
    "Header",
    "Outcome",
    "OutgoingRequest",
    "Verdict",
]
