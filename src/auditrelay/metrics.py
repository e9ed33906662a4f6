"""Prometheus metrics, served at /metrics.

With several worker processes, `serve` points prometheus-client at a shared directory
(`PROMETHEUS_MULTIPROC_DIR`, set before the workers start), each process writes its
counters there, and /metrics in any process adds them all up.
"""

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, generate_latest, multiprocess

EVENTS_INGESTED = Counter("auditrelay_events_ingested_total", "Events stored in the log")
EVENTS_DUPLICATE = Counter("auditrelay_events_duplicate_total", "Events re-sent with an id already stored")
EVENTS_CONFLICTING = Counter(
    "auditrelay_events_conflicting_total", "Events re-sent with an id already stored but another body"
)
EVENTS_DELIVERED = Counter(
    "auditrelay_events_delivered_total", "Events accepted by a destination", ["destination"]
)
DELIVERY_FAILURES = Counter(
    "auditrelay_delivery_failures_total", "Failed delivery attempts", ["destination", "outcome"]
)
EVENTS_LOST_TO_RETENTION = Counter(
    "auditrelay_events_lost_to_retention_total",
    "Events retention's hard maximum removed before the destination had them",
    ["destination"],
)
EVENTS_DEAD_LETTERED = Counter(
    "auditrelay_events_dead_lettered_total",
    "Events set aside after a destination refused them",
    ["destination"],
)


def exposition() -> bytes:
    """The metrics of every process of this service, in Prometheus' text format."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
