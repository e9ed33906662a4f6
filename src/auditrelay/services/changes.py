"""Turning what an admin sent into a destination: headers kept or replaced, options and
batch settings checked against the kind, signing secrets rotated, TLS settings merged, and
the audit diff of a change."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pydantic

from auditrelay.destinations import kind_named
from auditrelay.errors import FieldError, ValidationError
from auditrelay.model import BatchSettings, DeliverySettings, Destination, Header, TlsSettings
from auditrelay.security import GENERATE, new_signing_secret
from auditrelay.services.rendering import public_settings
from auditrelay.services.schemas import (
    BatchIn,
    DeliveryIn,
    DestinationCreate,
    DestinationPatch,
    HeaderIn,
    TlsIn,
)

_TLS_DEFAULTS = TlsSettings()


def merge_headers(given: list[HeaderIn], existing: dict[str, Header]) -> tuple[Header, ...]:
    result = []
    for index, header in enumerate(given):
        value = header.value
        if value is None:
            kept = existing.get(header.name.lower())
            if not header.secret or kept is None or not kept.secret:
                raise ValidationError(
                    "a header needs a value",
                    [
                        FieldError(
                            f"headers.{index}.value",
                            "is required (only an existing secret header may omit it)",
                        )
                    ],
                )
            value = kept.value
        result.append(Header(header.name, value, header.secret))
    return tuple(result)


def kind_options(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    try:
        model = kind_named(kind).options_model.model_validate(options)
    except pydantic.ValidationError as exc:
        errors = [
            FieldError("options." + ".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()
        ]
        raise ValidationError(f"invalid options for a {kind} destination", errors) from exc
    return model.model_dump(exclude_none=True)


def batch_settings(kind: str, given: BatchIn | None, current: BatchSettings | None) -> BatchSettings:
    base = current or kind_named(kind).default_batch
    if given is None:
        return base
    return BatchSettings(
        max_events=given.max_events or base.max_events,
        max_bytes=given.max_bytes or base.max_bytes,
        linger_ms=base.linger_ms if given.linger_ms is None else given.linger_ms,
    )


def delivery_settings(given: DeliveryIn | None, current: DeliverySettings | None) -> DeliverySettings:
    base = current or DeliverySettings()
    if given is None:
        return base
    return DeliverySettings(
        ordered=base.ordered if given.ordered is None else given.ordered,
        max_in_flight=base.max_in_flight if given.max_in_flight is None else given.max_in_flight,
    )


def signing_secrets(
    given: set[str], secret: str | None, previous: str | None, current: Destination | None
) -> tuple[str | None, str | None]:
    """The signing secrets after a change: (current, previous).

    `generate` makes a fresh secret. A new secret replacing one starts a rotation: the
    replaced secret becomes the previous one and keeps signing (receivers verify with
    either) until `signing_secret_previous` is set to null; giving both in one change
    replaces a secret outright. A null `signing_secret` turns signing off.
    """
    now, before = (current.signing_secret, current.signing_secret_previous) if current else (None, None)
    new, new_previous = now, before
    if "signing_secret" in given:
        new = new_signing_secret() if secret == GENERATE else secret
        if new != now:
            new_previous = now
    if "signing_secret_previous" in given:
        new_previous = previous
    if new is None and new_previous is not None:
        if "signing_secret_previous" in given:
            raise ValidationError(
                "a previous signing secret needs a current one",
                [FieldError("signing_secret_previous", "is only used beside a signing_secret")],
            )
        new_previous = None  # signing turned off: nothing signs any more
    return new, None if new_previous == new else new_previous


def tls_settings(given: TlsIn | None, current: TlsSettings | None) -> TlsSettings:
    """TLS settings with the given fields applied (null: back to the default); None given
    means the defaults. Removing the client certificate removes its key too."""
    if given is None:
        return _TLS_DEFAULTS
    values = {f.name: getattr(current or _TLS_DEFAULTS, f.name) for f in fields(TlsSettings)}
    for name in given.model_fields_set:
        value = getattr(given, name)
        values[name] = getattr(_TLS_DEFAULTS, name) if value is None else value
    cleared = given.model_fields_set - {f for f in given.model_fields_set if getattr(given, f) is not None}
    if "client_certificate" in cleared and "client_key" not in given.model_fields_set:
        values["client_key"] = None
    return TlsSettings(**values)


def signing_and_tls(
    given: DestinationCreate | DestinationPatch, current: Destination | None
) -> dict[str, Any]:
    """The destination's fields that signing and TLS settings change, for `replace` (only
    those the admin gave, when changing a destination)."""
    fields_set = given.model_fields_set
    values: dict[str, Any] = {}
    if current is None or fields_set & {"signing_secret", "signing_secret_previous"}:
        values["signing_secret"], values["signing_secret_previous"] = signing_secrets(
            fields_set, given.signing_secret, given.signing_secret_previous, current
        )
    if current is None or "tls" in fields_set:
        values["tls"] = tls_settings(given.tls, current.tls if current else None)
    return values


def reveal_generated(
    answer: dict[str, Any], given: DestinationCreate | DestinationPatch, destination: Destination
) -> dict[str, Any]:
    """A signing secret made on request is shown once, in the answer to that request (as a
    new API token is); every later answer masks it."""
    if given.signing_secret == GENERATE:
        answer["signing_secret"] = destination.signing_secret
    return answer


def diff(before: Destination, after: Destination) -> dict[str, Any]:
    """What changed, with secrets reduced to 'changed' so the audit log never holds them."""
    secret_url = kind_named(before.kind).url_is_secret or kind_named(after.kind).url_is_secret
    old = public_settings(before, secret_url, hint=False)
    new = public_settings(after, secret_url, hint=False)
    changes: dict[str, Any] = {}
    for key in new:
        if old.get(key) != new.get(key):
            changes[key] = {"from": old.get(key), "to": new.get(key)}
    if before.token != after.token:
        changes["token"] = "changed"
    if before.url != after.url and (secret_url or "url" not in changes):
        changes["url"] = "changed"  # a secret URL, or only its hidden parts (query, password)
    if [h.value for h in before.headers if h.secret] != [h.value for h in after.headers if h.secret]:
        changes["secret_header_values"] = "changed"
    for name, old_secret, new_secret in (
        ("signing_secret", before.signing_secret, after.signing_secret),
        ("signing_secret_previous", before.signing_secret_previous, after.signing_secret_previous),
        ("tls_client_key", before.tls.client_key, after.tls.client_key),
    ):
        if old_secret != new_secret:
            changes[name] = "changed"
    return changes
