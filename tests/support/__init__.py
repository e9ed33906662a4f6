"""Test helpers: the service as a real process, receivers on loopback that speak each
destination's protocol, event factories, and waiting on conditions.

Everything is re-exported here, so `from tests.support import X` works for every helper.
"""

from tests.support.factories import in_ns, make_event
from tests.support.receivers import (
    HANG,
    HecReceiver,
    Received,
    Receiver,
    Reply,
    SumoReceiver,
    split_concatenated_json,
)
from tests.support.service import ROOT, Service, alive, children_of, free_port
from tests.support.waiting import wait_until

__all__ = [
    "HANG",
    "ROOT",
    "HecReceiver",
    "Received",
    "Receiver",
    "Reply",
    "Service",
    "SumoReceiver",
    "alive",
    "children_of",
    "free_port",
    "in_ns",
    "make_event",
    "split_concatenated_json",
    "wait_until",
]
