"""Which events a destination takes: organization scope, event types, namespaces.

Matching uses only the indexed columns of the log (action, entity path, org), never the
event body, so filtering costs a few string comparisons per event.
"""

from __future__ import annotations

from auditrelay.model import StoredEvent


class EventFilter:
    def __init__(self, org: str | None, event_types: tuple[str, ...], namespaces: tuple[str, ...]) -> None:
        self.org = org
        self.match_all_types = not event_types or "*" in event_types
        self.exact_types = frozenset(t for t in event_types if not t.endswith("*"))
        # `document.*` matches `document.create` and `document.acl.update`, not `documents.x`.
        self.type_prefixes = tuple(t[:-1] for t in event_types if t.endswith(".*"))
        self.namespaces = tuple(ns.strip("/") for ns in namespaces)

    def matches(self, event: StoredEvent) -> bool:
        if self.org is not None and event.org != self.org:
            return False
        if not self.match_all_types:
            action = event.action
            if action not in self.exact_types and not action.startswith(self.type_prefixes):
                return False
        if self.namespaces:
            path = event.entity_path
            if path is None:
                return False
            # Prefixes match whole path segments: `acme/web` covers `acme/web/api`, not `acme/webshop`.
            return any(path == ns or path.startswith(ns + "/") for ns in self.namespaces)
        return True
