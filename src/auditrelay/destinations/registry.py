"""The kinds the service knows, by name: the one place a new kind is named.

Everything else (settings validation, the API, the delivery loop) looks kinds up here, so
adding a kind is one module defining a `DestinationKind` and one `register` call.
"""

from __future__ import annotations

from auditrelay.destinations.base import DestinationKind
from auditrelay.model import Destination
from auditrelay.security import secret_forms

KINDS: dict[str, DestinationKind] = {}


def register(kind: DestinationKind) -> DestinationKind:
    """Make `kind` available under `kind.name` (replacing a kind of the same name)."""
    KINDS[kind.name] = kind
    return kind


def kind_named(name: str) -> DestinationKind:
    """The kind called `name`; `KeyError` for a name no kind registered."""
    return KINDS[name]


def kind_names() -> list[str]:
    return sorted(KINDS)


def hidden_strings(destination: Destination) -> tuple[str, ...]:
    """What must never appear in text about this destination (error messages, answers shown
    to admins): its token, secret header values, secret URL, URL query and password."""
    kind = KINDS.get(destination.kind)
    token_parts = destination.token.split() if destination.token else []
    return secret_forms(
        destination.url,
        bool(kind and kind.url_is_secret),
        [
            destination.token,
            *token_parts,
            *(h.value for h in destination.headers if h.secret),
            destination.signing_secret,
            destination.signing_secret_previous,
        ],
    )
