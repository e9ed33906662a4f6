"""Prometheus metrics, served at /metrics."""

from prometheus_client import Counter

EVENTS_INGESTED = Counter("auditrelay_events_ingested_total", "Events stored in the log")
EVENTS_DUPLICATE = Counter("auditrelay_events_duplicate_total", "Events re-sent with an id already stored")
EVENTS_DELIVERED = Counter(
    "auditrelay_events_delivered_total", "Events accepted by a destination", ["destination"]
)
DELIVERY_FAILURES = Counter(
    "auditrelay_delivery_failures_total", "Failed delivery attempts", ["destination", "outcome"]
)
EVENTS_DEAD_LETTERED = Counter(
    "auditrelay_events_dead_lettered_total",
    "Events set aside after a destination refused them",
    ["destination"],
)
