"""Destinations, attempts, dead letters and replays as the API shows them: secrets masked."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import orjson

from auditrelay.delivery import tls_warnings
from auditrelay.destinations import kind_named
from auditrelay.model import (
    AttemptRecord,
    DeadLetter,
    DeliveryState,
    Destination,
    DestinationOverview,
    ReplayJob,
)
from auditrelay.security import mask
from auditrelay.store import iso_from_ms


def public_settings(d: Destination, secret_url: bool = False, hint: bool = True) -> dict[str, Any]:
    """The settings anyone who may see the destination may read: secrets masked. `hint`
    keeps a secret's last characters (answers to admins, to recognise it); audit events,
    streamed to every instance destination, get none of them."""

    def hidden(value: str) -> str | None:
        return mask(value) if hint else HIDDEN

    return {
        "name": d.name,
        "kind": d.kind,
        "url": shown_url(d.url, secret_url or kind_named(d.kind).url_is_secret, hint),
        "headers": [
            {"name": h.name, "value": hidden(h.value) if h.secret else h.value, "secret": h.secret}
            for h in d.headers
        ],
        "event_types": list(d.event_types),
        "namespaces": list(d.namespaces),
        "content_type": d.content_type,
        "active": d.active,
        "options": d.options,
        "batch": {
            "max_events": d.batch.max_events,
            "max_bytes": d.batch.max_bytes,
            "linger_ms": d.batch.linger_ms,
        },
        "delivery": {"ordered": d.delivery.ordered, "max_in_flight": d.delivery.max_in_flight},
        "tls": {
            "ca_bundle": d.tls.ca_bundle,
            "client_certificate": d.tls.client_certificate,
            # Write-only: whether one is set, and no character of it.
            "client_key": None if d.tls.client_key is None else "********",
            "min_version": d.tls.min_version,
            "verify": d.tls.verify,
        },
    }


HIDDEN = "********"


def shown_url(url: str, secret: bool, hint: bool = True) -> str:
    """A URL as shown anywhere (answers, status, history, audit events): a secret URL (Sumo
    Logic's) keeps only its scheme and host (and, with `hint`, its last four characters, to
    recognise it); any URL loses its user and password and its query string (where API keys
    travel), each replaced by `********`."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return HIDDEN
    if ":" in host:
        host = f"[{host}]"
    if secret:
        last = (parts.path + parts.query)[-4:] if hint and len(parts.path + parts.query) >= 12 else ""
        return f"{parts.scheme}://{host}{port}/{HIDDEN}{last}"
    user = f"{HIDDEN}@" if parts.username or parts.password else ""
    query = f"?{HIDDEN}" if parts.query else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}{query}"


#: How long before retention's hard maximum removes events a destination still owes the
#: status warns of it.
RETENTION_WARNING_MS = 86_400_000


def render(view: DestinationOverview, hard_max_days: float | None = None) -> dict[str, Any]:
    """A destination as the API shows it: secrets masked, delivery status attached (and, given
    retention's hard maximum, a warning when it is about to remove events still owed)."""
    destination, status, head = view.destination, view.status, view.head
    body: dict[str, Any] = {
        "id": destination.id,
        "org": destination.org,
        **public_settings(destination),
        "token": mask(destination.token),
        "signing_secret": mask(destination.signing_secret),
        "signing_secret_previous": mask(destination.signing_secret_previous),
        "verification_token": destination.verification_token,
        "warnings": tls_warnings(destination.tls),
        "filtered": destination.filtered,
        #: Why this process cannot open its secrets (None when it can).
        "secrets_unreadable": destination.secrets_unreadable,
        "created_at": iso_from_ms(destination.created_at_ms),
        "updated_at": iso_from_ms(destination.updated_at_ms),
    }
    if status is not None:
        last_error = None
        if status.last_error_at_ms is not None:
            last_error = {
                "at": iso_from_ms(status.last_error_at_ms),
                "status": status.last_error_status,
                "message": status.last_error_message,
            }
        body["status"] = {
            "state": status.state if destination.active else DeliveryState.PAUSED,
            "cursor": status.cursor,
            "head": head,
            "lag": view.lag,
            "lag_seconds": (
                round(max(0.0, time.time() - view.oldest_pending_ms / 1000), 3)
                if view.oldest_pending_ms is not None
                else 0.0
            ),
            "dead_letters": view.dead_letters,
            "delivered_total": status.delivered_total,
            "last_success_at": iso_from_ms(status.last_success_at_ms),
            "last_error": last_error,
            "consecutive_failures": status.consecutive_failures,
            "next_retry_at": iso_from_ms(status.next_retry_at_ms) if destination.active else None,
            # As the delivering process last wrote them (with each commit, each failure,
            # and when a request turns slow).
            "in_flight": status.in_flight if destination.active else 0,
            "oldest_in_flight_seconds": (
                round(max(0.0, time.time() - status.oldest_in_flight_ms / 1000), 3)
                if status.oldest_in_flight_ms is not None and status.in_flight and destination.active
                else None
            ),
            "events_per_second": round(view.delivered_last_minute / 60, 2),
            "lost_to_retention": (
                {
                    "events": status.lost_to_retention,
                    "from_seq": status.lost_from_seq,
                    "to_seq": status.lost_to_seq,
                    "at": iso_from_ms(status.lost_at_ms),
                }
                if status.lost_to_retention
                else None
            ),
            "retention_warning": _retention_warning(view, hard_max_days),
        }
    return body


def render_attempt(r: AttemptRecord) -> dict[str, Any]:
    return {
        "at": iso_from_ms(r.at_ms),
        "events": r.events,
        "bytes": r.bytes,
        "status": r.http_status,
        "latency_ms": r.latency_ms,
        "outcome": r.outcome,
        "error": r.error,
        "replay": r.replay,
    }


def render_dead_letter(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "seq": letter.seq,
        "event_id": letter.event_id,
        "failed_at": iso_from_ms(letter.failed_at_ms),
        "attempts": letter.attempts,
        "status": letter.http_status,
        "error": letter.error,
        "event": orjson.loads(letter.body),
    }


def render_replay(job: ReplayJob) -> dict[str, Any]:
    span = max(1, job.to_seq - job.from_seq + 1)
    return {
        "id": job.id,
        "from_seq": job.from_seq,
        "to_seq": job.to_seq,
        "state": job.state.value,
        "progress": round(min(1.0, max(0, job.cursor - job.from_seq + 1) / span), 4),
        "delivered": job.delivered,
        "created_at": iso_from_ms(job.created_at_ms),
        "finished_at": iso_from_ms(job.finished_at_ms),
    }


def _retention_warning(view: DestinationOverview, hard_max_days: float | None) -> str | None:
    """Said a day ahead: the oldest event the destination still owes reaches retention's hard
    maximum soon, and will be removed whether or not it was delivered."""
    if hard_max_days is None or view.oldest_pending_ms is None:
        return None
    removal_ms = view.oldest_pending_ms + int(hard_max_days * 86_400_000)
    if removal_ms - time.time() * 1000 > RETENTION_WARNING_MS:
        return None
    return (
        f"events this destination has not received yet reach the retention hard maximum "
        f"({hard_max_days:g} days) and will be removed from {iso_from_ms(removal_ms)} on; resume or "
        "fix the destination before then, or raise AUDITRELAY_RETENTION_HARD_MAX_DAYS"
    )
