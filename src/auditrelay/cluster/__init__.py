"""Several processes on one store: one of them delivers, all of them take events.

`DeliveryLock` elects the process that runs the delivery loops and retention; `signals`
carries "new events" and "destinations changed" from the others to it.
"""

from auditrelay.cluster.coordinator import DeliveryCoordinator
from auditrelay.cluster.lock import DeliveryLock, FileLock
from auditrelay.cluster.signals import DESTINATIONS, EVENTS, SignalReceiver, SignalSender

__all__ = [
    "DESTINATIONS",
    "EVENTS",
    "DeliveryCoordinator",
    "DeliveryLock",
    "FileLock",
    "SignalReceiver",
    "SignalSender",
]
