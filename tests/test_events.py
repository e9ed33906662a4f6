"""The hand-written validator and the published JSON Schema must agree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jsonschema
import orjson
import pytest

from auditrelay.errors import MalformedRequest, PayloadTooLarge, UnsupportedMediaType, ValidationError
from auditrelay.events import event_schema, parse_body, validate_events
from tests.support import make_event

GOOD: list[dict[str, Any]] = [
    make_event(),
    {"action": "login", "actor": {"type": "anonymous"}},
    {"action": "a.b_c.d9", "actor": {"type": "system"}, "details": [1, 2, 3]},
    {"action": "x.y", "actor": {"type": "service", "name": "ci"}, "entity": {"id": "abc", "path": "a/b"}},
    {
        "action": "x.y",
        "actor": {"type": "user", "user": {"id": "u-1"}},
        "timestamp": "2024-01-01T00:00:00+02:00",
    },
    {"action": "x.y", "actor": {"type": "user", "user": {}}, "context": {"ip_address": "::1"}},
    {"action": "x.y", "actor": {"type": "system"}, "target": {"type": "user", "id": 12, "name": "n"}},
]

BAD: list[dict[str, Any] | Any] = [
    {"actor": {"type": "system"}},
    {"action": "x.y"},
    {"action": "Document.Create", "actor": {"type": "system"}},
    {"action": "x..y", "actor": {"type": "system"}},
    {"action": "x.y", "actor": {"type": "robot"}},
    {"action": "x.y", "actor": {"type": "user"}},
    {"action": "x.y", "actor": {"type": "system"}, "extra": 1},
    {"action": "x.y", "actor": {"type": "system"}, "id": "123"},
    {"action": "x.y", "actor": {"type": "system"}, "id": 5},
    {"action": "x.y", "actor": {"type": "system"}, "timestamp": "2024-01-01"},
    {"action": "x.y", "actor": {"type": "system"}, "timestamp": 1700000000},
    {"action": "x.y", "actor": {"type": "system"}, "context": {"ip_address": "1.2.3"}},
    {"action": "x.y", "actor": {"type": "system"}, "context": "here"},
    {"action": "x.y", "actor": {"type": "system"}, "entity": {"path": 3}},
    {"action": "x.y", "actor": {"type": "system"}, "entity": {"id": True}},
    {"action": "x.y", "actor": {"type": "system"}, "target": {"id": 1.5}},
    {"action": "x.y", "actor": {"type": "user", "user": {"email": 3}}},
    "not an object",
]


@pytest.mark.parametrize("event", GOOD)
def test_good_events_pass_both_the_validator_and_the_schema(event: dict[str, Any]) -> None:
    validate_events([event])
    jsonschema.validate(event, event_schema(), format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize("event", BAD)
def test_bad_events_fail_both_the_validator_and_the_schema(event: Any) -> None:
    with pytest.raises(ValidationError):
        validate_events([event])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event, event_schema(), format_checker=jsonschema.FormatChecker())


def test_the_stored_form_also_satisfies_the_schema() -> None:
    for event in GOOD:
        stored = orjson.loads(validate_events([event])[0].body)
        jsonschema.validate(stored, event_schema(), format_checker=jsonschema.FormatChecker())
        assert stored["id"] and stored["timestamp"].endswith("Z")


def test_timestamps_are_normalised_and_occurred_at_is_exact() -> None:
    received = datetime(2025, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    missing, offset = validate_events(
        [
            {"action": "a.b", "actor": {"type": "system"}},
            {"action": "a.b", "actor": {"type": "system"}, "timestamp": "2024-11-13T07:00:51.5187+01:00"},
        ],
        received,
    )
    assert orjson.loads(missing.body)["timestamp"] == "2025-05-06T07:08:09.123Z"
    assert missing.occurred_at_ms == int(received.timestamp() * 1000)
    assert orjson.loads(offset.body)["timestamp"] == "2024-11-13T06:00:51.518Z"
    assert offset.occurred_at_ms == 1731477651518


def test_id_is_lowercased_and_keeps_the_first_position() -> None:
    event = validate_events(
        [{"actor": {"type": "system"}, "action": "a.b", "id": "806ED0D9-7D25-4DF2-9A6C-F7D2F6B8DBA6"}]
    )[0]
    assert event.id == "806ed0d9-7d25-4df2-9a6c-f7d2f6b8dba6"
    assert event.body.startswith(b'{"id":"806ed0d9')


def test_every_error_of_every_event_is_reported_with_its_index() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_events([make_event(), {"action": 1}, make_event(bogus=True)])
    found = [(e.index, e.field) for e in caught.value.errors]
    assert found == [(1, "action"), (1, "actor"), (2, "bogus")]


def test_parse_body_forms_and_limits() -> None:
    one = orjson.dumps(make_event())
    assert len(parse_body(one, "application/json", 10)) == 1
    assert len(parse_body(b"[" + one + b"," + one + b"]", "application/json; charset=utf-8", 10)) == 2
    assert len(parse_body(one + b"\n\n" + one + b"\n", "application/x-ndjson", 10)) == 2
    with pytest.raises(PayloadTooLarge):
        parse_body(b"[" + b",".join([one] * 3) + b"]", "application/json", 2)
    with pytest.raises(PayloadTooLarge):
        parse_body(b"\n".join([one] * 3), "application/x-ndjson", 2)
    with pytest.raises(MalformedRequest):
        parse_body(b"{", "application/json", 10)
    with pytest.raises(UnsupportedMediaType):
        parse_body(one, "application/xml", 10)
    with pytest.raises(ValidationError):
        parse_body(b"[]", "application/json", 10)


def test_an_array_body_that_is_not_json_says_so() -> None:
    for body in (b'[{"action": "a.b"}, {"action": ]', b'[{"action": "\\ud800"}]', b'[{"action": "\xff"}]'):
        with pytest.raises(MalformedRequest, match="the body is not valid JSON"):
            parse_body(body, "application/json", 10)


def test_an_event_nested_hundreds_of_levels_deep_is_refused_for_its_nesting() -> None:
    # Within what the JSON parser reads (orjson: 1,024 levels), the validator's bound says
    # what is wrong (422), rather than any error of the parser's.
    deep = b'[{"action":"a.b","actor":{"type":"system"},"details":' + b"[" * 960 + b"]" * 960 + b"}]"
    items = parse_body(deep, "application/json", 10)
    with pytest.raises(ValidationError, match="1 of 1 event invalid") as caught:
        validate_events(items)
    assert "more than 64 levels deep" in caught.value.errors[0].message


def test_many_brackets_that_do_not_nest_deep_pass() -> None:
    """The bound is checked on the stored form by counting its brackets first: brackets in
    strings, or containers side by side, are many without being deep."""
    brackets = "[{" * 100
    wide = [[{"k": [n]}] for n in range(100)]  # 300 containers, 4 levels
    (event,) = validate_events([make_event(details={"text": brackets, "wide": wide})])
    assert orjson.loads(event.body)["details"]["text"] == brackets
    assert event.body.count(b"[") + event.body.count(b"{") > 64


def test_nesting_is_bounded_in_every_field_counting_the_event() -> None:
    def nested(depth: int) -> Any:
        value: Any = "leaf"
        for level in range(depth):
            value = {"k": value} if level % 2 else [value]
        return value

    validate_events([make_event(details=nested(63))])
    validate_events([make_event(context={"site": nested(62)})])  # objects outermost when even
    for field, value in (("details", nested(64)), ("context", {"site": nested(64)})):
        with pytest.raises(ValidationError) as caught:
            validate_events([make_event(**{field: value})])
        assert [(e.field, e.index) for e in caught.value.errors] == [(field, 0)]
        assert "more than 64 levels deep" in caught.value.errors[0].message
