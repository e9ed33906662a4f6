"""SQL for destination settings: one row each, secrets sealed, and its status row created.

`DestinationRows` holds the key that seals and opens secrets, so every read of a
destination goes through it and comes out as a `Destination` with its secrets open.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, insert, select, update

from auditrelay.errors import Conflict, NotFound
from auditrelay.model import (
    BatchSettings,
    DeliverySettings,
    DeliveryState,
    Destination,
    DestinationVersion,
    Header,
    TlsSettings,
)
from auditrelay.security import SecretBox, SecretsUnreadable
from auditrelay.store.database import Database
from auditrelay.store.delivery_rows import mark_resumed
from auditrelay.store.tables import (
    dead_letters,
    delivery_attempts,
    destination_status,
    destinations,
    replays,
)


class DestinationRows:
    def __init__(self, box: SecretBox) -> None:
        self._box = box

    # -- settings -------------------------------------------------------------------

    def insert(self, conn: Connection, destination: Destination, cursor: int) -> None:
        conn.execute(insert(destinations).values(**self._row(destination)))
        conn.execute(
            insert(destination_status).values(
                destination_id=destination.id,
                cursor=cursor,
                delivered_total=0,
                state=DeliveryState.PENDING if destination.active else DeliveryState.PAUSED,
                consecutive_failures=0,
            )
        )

    def update(self, conn: Connection, destination: Destination) -> None:
        if destination.secrets_unreadable:
            # Sealing it again would replace its secrets with the empty values it holds here.
            raise Conflict(f"this destination cannot be changed: {destination.secrets_unreadable}")
        values = self._row(destination)
        del values["id"], values["created_at_ms"]
        conn.execute(update(destinations).where(destinations.c.id == destination.id).values(**values))
        if not destination.active:
            conn.execute(
                update(destination_status)
                .where(destination_status.c.destination_id == destination.id)
                .values(state=DeliveryState.PAUSED, next_retry_at_ms=None)
            )
        else:
            mark_resumed(conn, destination.id)

    def delete(self, conn: Connection, destination_id: str) -> None:
        # Everything of the destination goes with it (explicitly: not relying on FK cascades).
        for table in (destination_status, dead_letters, replays, delivery_attempts):
            conn.execute(delete(table).where(table.c.destination_id == destination_id))
        conn.execute(delete(destinations).where(destinations.c.id == destination_id))

    def get(self, conn: Connection, destination_id: str) -> Destination | None:
        row = conn.execute(select(destinations).where(destinations.c.id == destination_id)).first()
        return self._destination(row._mapping) if row else None

    def visible(self, conn: Connection, destination_id: str, scope: str | None) -> Destination:
        """The destination, if the caller may see it: `scope` is the caller's organization
        (None for instance-wide). Another organization's destination does not exist, as far
        as the caller knows: `NotFound`, not forbidden."""
        destination = self.get(conn, destination_id)
        if destination is None or (scope is not None and destination.org != scope):
            raise NotFound(f"no destination with id {destination_id!r}")
        return destination

    def list(self, conn: Connection, org: str | None = None, *, all_orgs: bool = True) -> list[Destination]:
        query = select(destinations).order_by(destinations.c.created_at_ms, destinations.c.id)
        if not all_orgs:
            query = query.where(destinations.c.org == org)
        return [self._destination(row._mapping) for row in conn.execute(query)]

    def versions(self, conn: Connection) -> dict[str, DestinationVersion]:
        """Every destination's version, active flag and last retry request: cheap to poll."""
        rows = conn.execute(
            select(
                destinations.c.id,
                destinations.c.version,
                destinations.c.active,
                destination_status.c.retry_requested_at_ms,
            ).select_from(
                destinations.outerjoin(
                    destination_status, destination_status.c.destination_id == destinations.c.id
                )
            )
        )
        return {
            row.id: DestinationVersion(row.version, bool(row.active), row.retry_requested_at_ms or 0)
            for row in rows
        }

    # -- mapping --------------------------------------------------------------------

    def _row(self, d: Destination) -> dict[str, Any]:
        config = {
            "headers": [
                {"name": h.name, "secret": h.secret} | ({} if h.secret else {"value": h.value})
                for h in d.headers
            ],
            "event_types": list(d.event_types),
            "namespaces": list(d.namespaces),
            "content_type": d.content_type,
            "options": d.options,
            "batch": {
                "max_events": d.batch.max_events,
                "max_bytes": d.batch.max_bytes,
                "linger_ms": d.batch.linger_ms,
            },
            "delivery": {"ordered": d.delivery.ordered, "max_in_flight": d.delivery.max_in_flight},
            # The client key is a secret: sealed below with the others.
            "tls": {
                "ca_bundle": d.tls.ca_bundle,
                "client_certificate": d.tls.client_certificate,
                "min_version": d.tls.min_version,
                "verify": d.tls.verify,
            },
        }
        secrets = {
            "url": d.url,
            "token": d.token,
            "header_values": {h.name: h.value for h in d.headers if h.secret},
            "signing_secret": d.signing_secret,
            "signing_secret_previous": d.signing_secret_previous,
            "tls_client_key": d.tls.client_key,
        }
        return {
            "id": d.id,
            "org": d.org,
            "name": d.name,
            "kind": d.kind,
            "config": orjson.dumps(config).decode(),
            "secrets": self._box.seal(secrets),
            "key_id": self._box.primary_id,
            "verification_token": d.verification_token,
            "active": d.active,
            "version": d.version,
            "created_at_ms": d.created_at_ms,
            "updated_at_ms": d.updated_at_ms,
        }

    def _destination(self, row: Any) -> Destination:
        config = orjson.loads(row["config"])
        secrets, unreadable = self._open_secrets(row)
        secret_values = secrets.get("header_values", {})
        headers = tuple(
            Header(h["name"], secret_values.get(h["name"], "") if h["secret"] else h["value"], h["secret"])
            for h in config["headers"]
        )
        return Destination(
            id=row["id"],
            org=row["org"],
            name=row["name"],
            kind=row["kind"],
            url=secrets["url"],
            token=secrets.get("token"),
            headers=headers,
            event_types=tuple(config["event_types"]),
            namespaces=tuple(config["namespaces"]),
            content_type=config.get("content_type"),
            verification_token=row["verification_token"],
            active=bool(row["active"]),
            options=config.get("options", {}),
            batch=BatchSettings(**config["batch"]),
            # Destinations saved before the window existed have no `delivery`: the defaults.
            delivery=DeliverySettings(**config.get("delivery", {})),
            # Destinations saved before signing and TLS settings existed have neither.
            signing_secret=secrets.get("signing_secret"),
            signing_secret_previous=secrets.get("signing_secret_previous"),
            tls=TlsSettings(**config.get("tls", {}), client_key=secrets.get("tls_client_key")),
            version=row["version"],
            created_at_ms=row["created_at_ms"],
            updated_at_ms=row["updated_at_ms"],
            secrets_unreadable=unreadable,
        )

    def _open_secrets(self, row: Any) -> tuple[dict[str, Any], str | None]:
        try:
            return self._box.open(bytes(row["secrets"])), None
        except SecretsUnreadable:
            sealed_with = row["key_id"] or "unknown"
            reason = (
                f"its secrets were sealed with key {sealed_with}, and this process holds "
                f"{', '.join(self._box.key_ids)}: give every node the same AUDITRELAY_SECRET_KEY"
            )
            return {"url": "", "token": None, "header_values": {}}, reason

    # -- keys -----------------------------------------------------------------------

    def key_report(self, conn: Connection) -> Sequence[tuple[str, str | None, str | None]]:
        """Every destination's (id, fingerprint of the key that sealed it, fingerprint of
        this process's key that opens it or None), filling in fingerprints not yet stored."""
        report = []
        for row in conn.execute(select(destinations.c.id, destinations.c.key_id, destinations.c.secrets)):
            try:
                _value, opened_by = self._box.open_with_id(bytes(row.secrets))
            except SecretsUnreadable:
                opened_by = None
            if row.key_id is None and opened_by is not None:
                conn.execute(update(destinations).where(destinations.c.id == row.id).values(key_id=opened_by))
            report.append((row.id, row.key_id or opened_by, opened_by))
        return report

    def reseal_all(self, conn: Connection) -> tuple[int, Sequence[str]]:
        """Seal every destination's secrets with the first key: (how many were re-sealed,
        the ids none of the keys opens)."""
        resealed = 0
        unreadable: builtins.list[str] = []
        for row in conn.execute(
            select(destinations.c.id, destinations.c.key_id, destinations.c.secrets)
        ).all():
            try:
                value, opened_by = self._box.open_with_id(bytes(row.secrets))
            except SecretsUnreadable:
                unreadable.append(row.id)
                continue
            if opened_by != self._box.primary_id or row.key_id != self._box.primary_id:
                conn.execute(
                    update(destinations)
                    .where(destinations.c.id == row.id)
                    .values(secrets=self._box.seal(value), key_id=self._box.primary_id)
                )
                resealed += 1
        return resealed, unreadable


# The CLI's (blocking): the key check before serving, and `auditrelay keys rotate`.


def count_sealed(db: Database) -> int:
    """How many destinations hold sealed secrets (all of them)."""
    with db.reading() as conn:
        return int(conn.execute(select(func.count()).select_from(destinations)).scalar_one())


def check_sealed(db: Database, rows: DestinationRows) -> Sequence[tuple[str, str | None, str | None]]:
    with db.writing() as conn:
        return rows.key_report(conn)


def reseal_sealed(db: Database, rows: DestinationRows) -> tuple[int, Sequence[str]]:
    with db.writing() as conn:
        return rows.reseal_all(conn)
