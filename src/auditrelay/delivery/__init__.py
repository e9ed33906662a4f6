"""Delivery: one loop per destination, retries with backoff, and the supervisor running them."""

from auditrelay.delivery.supervisor import DeliverySupervisor
from auditrelay.delivery.worker import DestinationWorker

__all__ = ["DeliverySupervisor", "DestinationWorker"]
