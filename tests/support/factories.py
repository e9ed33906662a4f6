"""Events as producers send them."""

from __future__ import annotations

import uuid
from typing import Any


def make_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "action": "document.create",
        "actor": {
            "type": "user",
            "user": {"id": 146, "email": "flapjack@example.com", "name": "Flapjack Toasty"},
        },
        "context": {
            "ip_address": "39.139.42.243",
            "user_agent": "Mozilla/5.0",
            "session_id": "ixVo6maPbcgd1vvoj93teT",
            "site": {"id": 42, "name": "Grist Labs", "domain": "gristlabs"},
        },
        "timestamp": "2024-11-13T06:00:51.518Z",
        "details": {"document": {"id": "4cq1mNTkQmEF5KsUVGiy6H", "name": "Untitled document"}},
    }
    event.update(overrides)
    return event


def in_ns(namespace: str, **overrides: Any) -> dict[str, Any]:
    """An event in a namespace of its own, so a test's destinations see only its events."""
    return make_event(entity={"type": "project", "id": 7, "path": namespace}, **overrides)
