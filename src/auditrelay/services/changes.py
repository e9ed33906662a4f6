"""Turning what an admin sent into a destination: headers kept or replaced, options and
batch settings checked against the kind, and the audit diff of a change."""

from __future__ import annotations

from typing import Any

import pydantic

from auditrelay.destinations import kind_named
from auditrelay.errors import FieldError, ValidationError
from auditrelay.model import BatchSettings, DeliverySettings, Destination, Header
from auditrelay.services.rendering import public_settings
from auditrelay.services.schemas import BatchIn, DeliveryIn, HeaderIn


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
    return changes
