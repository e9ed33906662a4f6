"""The C-level shape check at ingest (`events._accept_valid`) accepts only what the
hand-written check accepts, and accepts it as the same stored event.

An event the shape refuses goes to the hand-written check, so refusing too much costs time
only; accepting too much would store an event the API documents as invalid. Every event of
the corpus below is put through both, and the common events must take the fast path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
import pytest

from auditrelay.errors import FieldError
from auditrelay.events import ValidEvent, _accept_valid, _validate_one
from tests.support import make_event
from tests.test_events import BAD, GOOD

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SYSTEM = {"type": "system"}


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


EDGES: list[Any] = [
    {"action": "x.y\n", "actor": SYSTEM},  # `$` would match before a final newline
    {"action": "x.y", "actor": SYSTEM, "id": "806ED0D9-7D25-4DF2-9A6C-F7D2F6B8DBA6"},
    {"action": "x.y", "actor": SYSTEM, "id": "806ed0d9-7d25-4df2-9a6c-f7d2f6b8dba6\n"},
    {"action": "x.y", "actor": SYSTEM, "id": "806ed0d97d254df29a6cf7d2f6b8dba6"},
    {"action": "x.y", "actor": SYSTEM, "id": None, "context": None, "entity": None, "target": None},
    {"action": "x." + "y" * 199, "actor": SYSTEM},
    {"action": "x." + "y" * 198, "actor": SYSTEM},
    {"action": "x.y", "actor": SYSTEM, "org": ""},
    {"action": "x.y", "actor": SYSTEM, "org": "o" * 200},
    {"action": "x.y", "actor": SYSTEM, "org": "o" * 201},
    {"action": "x.y", "actor": SYSTEM, "org": 7},
    {"action": "x.y", "actor": {"type": "user", "user": None}},
    {"action": "x.y", "actor": {"type": "user", "user": "alice"}},
    {"action": "x.y", "actor": {"type": "user", "user": {"id": False}}},
    {"action": "x.y", "actor": {"type": "user", "user": {"id": 1.1805916207174113e21}}},  # orjson: 2**70
    {"action": "x.y", "actor": {"type": "user", "user": {"name": "é" * 4096}}},
    {"action": "x.y", "actor": {"type": "user", "user": {"name": "é" * 4097}}},
    {"action": "x.y", "actor": {"type": "system", "extra": {"free": True}}},
    {"action": "x.y", "actor": SYSTEM, "context": {"ip_address": "2001:db8::1"}},
    {"action": "x.y", "actor": SYSTEM, "context": {"ip_address": "2001:db8::g"}},
    {"action": "x.y", "actor": SYSTEM, "context": {"ip_address": "01.2.3.4"}},
    {"action": "x.y", "actor": SYSTEM, "context": {"site": []}},
    {"action": "x.y", "actor": SYSTEM, "context": {"site": {"a": deep(61)}}},
    {"action": "x.y", "actor": SYSTEM, "context": {"site": {"a": deep(62)}}},
    {"action": "x.y", "actor": SYSTEM, "details": deep(63)},
    {"action": "x.y", "actor": SYSTEM, "details": deep(64)},
    {"action": "x.y", "actor": SYSTEM, "entity": {"path": "/a/b/"}},
    {"action": "x.y", "actor": SYSTEM, "entity": {"path": ""}},
    {"action": "x.y", "actor": SYSTEM, "target": {"name": None, "id": "t"}},
    {"action": "x.y", "actor": SYSTEM, "timestamp": "9999-12-31T23:59:59-01:00"},
    {"action": "x.y", "actor": SYSTEM, "timestamp": "1969-12-31T23:59:59Z"},
    {"action": "x.y", "actor": SYSTEM, "timestamp": "2024-11-13t06:00:51.5z"},
    {"action": "x.y", "actor": SYSTEM, "timestamp": "2024-11-13T06:00:51.518Z"},
    {"action": "x.y", "actor": SYSTEM, "timestamp": "2024-13-13T06:00:51Z"},
    {"action": "x.y", "actor": SYSTEM, "timestamp": None},
    {"action": None, "actor": SYSTEM},
    {"action": "x.y", "actor": None},
    [],
    None,
]


def without_generated_id(event: ValidEvent) -> ValidEvent:
    body = orjson.loads(event.body)
    body["id"] = ""
    return msgspec.structs.replace(event, id="", body=orjson.dumps(body))


@pytest.mark.parametrize("item", GOOD + BAD + EDGES)
def test_the_shape_accepts_nothing_the_hand_written_check_refuses(item: Any) -> None:
    for sender_org in (None, "acme"):
        errors: list[FieldError] = []
        slow = _validate_one(item, 0, NOW, errors, sender_org)
        fast = _accept_valid(item, NOW, sender_org)
        if fast is None:
            continue
        assert slow is not None, f"accepted by the shape only; the hand-written check says {errors}"
        if isinstance(item, dict) and item.get("id") is None:  # a new id each time
            fast, slow = without_generated_id(fast), without_generated_id(slow)
        assert fast == slow


def test_common_events_take_the_fast_path() -> None:
    """The shape is not so strict that every event falls back (a test that can fail)."""
    taken = [item for item in GOOD + [make_event() for _ in range(5)] if _accept_valid(item, NOW, None)]
    assert len(taken) == len(GOOD) + 5
