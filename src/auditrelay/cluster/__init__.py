"""Several processes on one store: one of them delivers, all of them take events.

`DeliveryLock` elects the process that runs the delivery loops and retention; `signals`
carries "new events" and "destinations changed" from the others to it.
"""

from auditrelay.cluster.coordinator import DeliveryCoordinator
from auditrelay.cluster.lock import DeliveryLock, FileLock, PostgresAdvisoryLock

__all__ = ["DeliveryCoordinator", "DeliveryLock", "FileLock", "PostgresAdvisoryLock"]
