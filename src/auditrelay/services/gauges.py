"""Per-destination gauges for Prometheus: state, lag, requests in flight, rate.

Counters are kept by each process (`metrics`); these figures live in the database, written
by whichever process delivers, so any process's /metrics reads them there at scrape time.
Each series is labelled with the destination's id and name, as an admin looks them up.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from auditrelay.model import DeliveryState, DestinationOverview

LABELS = ["destination", "name"]


class _Overviews(Collector):
    def __init__(self, views: Sequence[DestinationOverview]) -> None:
        self._views = views

    def collect(self) -> Iterable[Metric]:
        state = GaugeMetricFamily(
            "auditrelay_destination_state",
            "1 for the state the destination is in, 0 for the others",
            labels=[*LABELS, "state"],
        )
        lag = GaugeMetricFamily(
            "auditrelay_destination_lag_events", "Events the destination still owes", labels=LABELS
        )
        lag_seconds = GaugeMetricFamily(
            "auditrelay_destination_lag_seconds",
            "Age of the oldest event the destination still owes (0 when caught up)",
            labels=LABELS,
        )
        in_flight = GaugeMetricFamily(
            "auditrelay_destination_in_flight_requests", "Requests sent and not yet answered", labels=LABELS
        )
        rate = GaugeMetricFamily(
            "auditrelay_destination_delivered_events_per_second",
            "Events delivered per second over the last minute",
            labels=LABELS,
        )
        now = time.time()
        for view in self._views:
            destination, status = view.destination, view.status
            if status is None:
                continue
            labels = [destination.id, destination.name]
            current = status.state if destination.active else DeliveryState.PAUSED
            for each in DeliveryState:
                state.add_metric([*labels, each.value], 1.0 if each is current else 0.0)
            lag.add_metric(labels, float(view.lag))
            oldest = view.oldest_pending_ms
            lag_seconds.add_metric(labels, max(0.0, now - oldest / 1000) if oldest is not None else 0.0)
            in_flight.add_metric(labels, float(status.in_flight if destination.active else 0))
            rate.add_metric(labels, view.delivered_last_minute / 60)
        return [state, lag, lag_seconds, in_flight, rate]


def destination_gauges(views: Sequence[DestinationOverview]) -> bytes:
    """The gauges of `views`, in Prometheus' text format."""
    registry = CollectorRegistry()
    registry.register(_Overviews(views))
    return generate_latest(registry)
