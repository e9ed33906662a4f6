"""The native audit event: parsing, validation, normalisation.

An event is validated once, at ingest, and serialised once: the bytes stored in the log are
the bytes every destination receives (wrapped, for Splunk, in a HEC envelope). Validation is
hand-written rather than driven by a generic JSON Schema engine because ingest is the hot path
(tens of thousands of events a second) and because the producer deserves one precise message
per field. `schema/event.schema.json` states the same rules for producers; a test checks that
the two agree on a corpus of good and bad events.

Most events are valid, so each is first checked by `msgspec` against the shapes below
(`_Event`), in C: that check accepts only what the hand-written one accepts, and an event it
refuses goes through the hand-written check, which says precisely what is wrong (or accepts
it: the shapes are stricter in places, such as IPv6 addresses, to stay simple).
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Annotated, Any, Literal

import msgspec
import orjson

from auditrelay.errors import FieldError, MalformedRequest, PayloadTooLarge, ValidationError
from auditrelay.model import StateChange

TOP_LEVEL_KEYS = ("id", "org", "action", "actor", "context", "timestamp", "details", "entity", "target")
MAX_ORG_LENGTH = 200
ACTOR_TYPES = ("user", "service", "system", "anonymous")
ACTION_PATTERN = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
MAX_ACTION_LENGTH = 200
MAX_STRING_LENGTH = 4096
#: How deep arrays and objects may nest in an event, the event object itself the first level.
#: Well within what JSON parsers (orjson: 1024 to read, 255 to write) and receivers handle.
MAX_NESTING_DEPTH = 64
_UUID_PATTERN = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The times an event may carry, in UTC: from the Unix epoch to the end of the year 9999
#: (the stored form has four digits of year; times stored are milliseconds since the epoch).
MIN_TIMESTAMP = _EPOCH
MAX_TIMESTAMP = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
TIMESTAMP_RANGE = "1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z"
_IPV4 = re.compile(r"((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)", re.ASCII)
_CANONICAL_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", re.ASCII)
_CANONICAL_MIN = "1970-01-01T00:00:00.000Z"
_MILLISECOND = timedelta(milliseconds=1)

# -- the shapes of a valid event, checked in C (msgspec) before the hand-written check ------
#
# Each constraint is the hand-written check's own (or stricter); fields not named inside the
# nested objects are free, as they are there. `details` and `context.site` are not looked
# into (the nesting bound is checked on the decoded event).

_Text = Annotated[str, msgspec.Meta(max_length=MAX_STRING_LENGTH)]
_ScalarId = int | str  # msgspec is strict: neither a boolean nor a float passes as an int


class _User(msgspec.Struct):
    id: _ScalarId | None = None
    email: _Text | None = None
    name: _Text | None = None


class _Actor(msgspec.Struct):
    type: Literal["user", "service", "system", "anonymous"]
    user: _User | None = None


class _Context(msgspec.Struct):
    ip_address: str | None = None  # IPv4 or IPv6: checked after, in Python
    user_agent: _Text | None = None
    session_id: _Text | None = None
    site: dict[str, Any] | None = None


class _Entity(msgspec.Struct):
    type: _Text | None = None
    id: _ScalarId | None = None
    path: _Text | None = None


class _Target(msgspec.Struct):
    type: _Text | None = None
    id: _ScalarId | None = None
    name: _Text | None = None


class _Event(msgspec.Struct, forbid_unknown_fields=True):
    # The patterns of `action` and `id` are checked after the conversion, by the compiled
    # expressions' `fullmatch`: msgspec's `Meta(pattern=...)` calls back into Python's `re`
    # for each value and cost about three times as much as both checks made directly.
    action: Annotated[str, msgspec.Meta(max_length=MAX_ACTION_LENGTH)]
    actor: _Actor
    id: str | None = None
    org: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ORG_LENGTH)] | None = None
    context: _Context | None = None
    timestamp: str | None = None
    details: Any = None
    entity: _Entity | None = None
    target: _Target | None = None


class ValidEvent(msgspec.Struct, frozen=True, gc=False):
    """An accepted event, ready to append: the indexed columns and the serialised body.

    A `msgspec.Struct`, not a dataclass: one is made per event at ingest, and a frozen
    dataclass's `__init__` costs several times more (a call per field). It holds no
    containers, so the garbage collector need not track it (`gc=False`).
    """

    id: str
    action: str
    entity_path: str | None
    occurred_at_ms: int
    body: bytes
    #: False when the sender gave no timestamp and the time of receipt was filled in.
    timestamp_given: bool = True
    #: The token acting, for the relay's own audit events (provenance); senders' events get
    #: the sending token's id when stored.
    token_id: str | None = None
    #: The organization the event belongs to: given by the sender (instance tokens), or the
    #: sending token's (then written into the body too, so every destination sees it).
    org: str | None = None

    def differs_from(self, stored: bytes) -> bool:
        """True when `stored` (the body of an event with this id) is another event, not the
        same one sent again. A re-sent event without a timestamp gets a new time of receipt,
        so the timestamp is then left out of the comparison."""
        if stored == self.body:
            return False
        mine, theirs = orjson.loads(self.body), orjson.loads(stored)
        if not self.timestamp_given:
            mine.pop("timestamp", None)
            theirs.pop("timestamp", None)
        return bool(mine != theirs)


def event_schema() -> dict[str, Any]:
    """The published JSON Schema of the native format (also served by the API)."""
    text = resources.files("auditrelay").joinpath("schema/event.schema.json").read_bytes()
    result: dict[str, Any] = orjson.loads(text)
    return result


def parse_body(raw: bytes, content_type: str | None, max_events: int) -> list[Any]:
    """Decode a request body into a list of raw event values.

    Accepts one JSON object, a JSON array of objects, or NDJSON (one object per line) when
    the content type says so. Raises `MalformedRequest` with the line/position when the
    bytes are not JSON, and `PayloadTooLarge` past `max_events`.
    """
    media_type = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if media_type in (
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/json-seq",
    ):
        items: list[Any] = []
        for line_number, line in enumerate(raw.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise MalformedRequest(f"line {line_number} is not valid JSON: {exc}") from exc
            if len(items) > max_events:
                break
    elif media_type in ("application/json", "text/json", "text/plain") or media_type.endswith("+json"):
        if not raw.strip():
            raise MalformedRequest("the request body is empty; send one event, a JSON array or NDJSON")
        try:
            decoded = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise MalformedRequest(f"the body is not valid JSON: {exc}") from exc
        items = decoded if isinstance(decoded, list) else [decoded]
    else:
        from auditrelay.errors import UnsupportedMediaType

        raise UnsupportedMediaType(
            f"Content-Type {media_type!r} is not accepted; use application/json or application/x-ndjson"
        )
    if not items:
        raise ValidationError(
            "the request holds no events", [FieldError("", "at least one event is required")]
        )
    if len(items) > max_events:
        raise PayloadTooLarge(f"at most {max_events} events are accepted per request")
    return items


def validate_events(
    items: list[Any],
    now: datetime | None = None,
    max_event_bytes: int | None = None,
    sender_org: str | None = None,
) -> list[ValidEvent]:
    """Validate every item; all-or-nothing: any error rejects the whole batch with all errors.

    `sender_org` is the sending token's organization: an event that names none gets it, in
    its body too. One naming another keeps it here; refusing it is the caller's part (403).

    An event larger than `max_event_bytes` once serialised is refused too (413, naming its
    index): every read of the log, every request and every dead letter holds whole events,
    so the bound on one event is what bounds their memory.
    """
    received = now or datetime.now(UTC)
    errors: list[FieldError] = []
    valid: list[ValidEvent] = []
    for index, item in enumerate(items):
        event = _accept_valid(item, received, sender_org)
        if event is not None:
            valid.append(event)
            continue
        event_errors: list[FieldError] = []
        event = _validate_one(item, index, received, event_errors, sender_org)
        if event_errors:
            errors.extend(event_errors)
        elif event is not None:
            valid.append(event)
    if errors:
        plural = "s" if len(items) > 1 else ""
        detail = f"{len({e.index for e in errors})} of {len(items)} event{plural} invalid; nothing was stored"
        if any(e.message == "unknown field" for e in errors):
            detail += f"; the fields of an event are {', '.join(TOP_LEVEL_KEYS)}"
        raise ValidationError(detail, errors)
    if max_event_bytes is not None:
        too_large = [
            FieldError("", f"the event is {len(e.body)} bytes; at most {max_event_bytes} are accepted", index)
            for index, e in enumerate(valid)
            if len(e.body) > max_event_bytes
        ]
        if too_large:
            plural = "s" if len(too_large) > 1 else ""
            raise PayloadTooLarge(
                f"{len(too_large)} event{plural} larger than {max_event_bytes} bytes; nothing was stored",
                too_large,
            )
    return valid


def _validate_one(
    item: Any, index: int, received: datetime, errors: list[FieldError], sender_org: str | None = None
) -> ValidEvent | None:
    def fail(field: str, message: str) -> None:
        errors.append(FieldError(field=field, message=message, index=index))

    if not isinstance(item, dict):
        fail("", f"an event must be a JSON object, not {_json_type(item)}")
        return None
    # One walk of the whole event in the common case; only a too deep one is walked again,
    # field by field, to name the fields at fault.
    too_deep = _nests_deeper(item, MAX_NESTING_DEPTH)
    for key, value in item.items():
        if key not in TOP_LEVEL_KEYS:
            fail(key, "unknown field")  # the allowed ones are named once, in the detail
        elif too_deep and _nests_deeper(value, MAX_NESTING_DEPTH - 1):
            fail(
                key,
                f"nests arrays and objects more than {MAX_NESTING_DEPTH} levels deep "
                "(counting the event itself); flatten it",
            )

    event_id = _check_id(item.get("id"), fail)
    org = item.get("org")
    if org is not None and (not isinstance(org, str) or not 0 < len(org) <= MAX_ORG_LENGTH):
        fail("org", f"must be an organization's name (a string of 1 to {MAX_ORG_LENGTH} characters)")
    action = item.get("action")
    if action is None:
        fail("action", "is required")
    elif not isinstance(action, str):
        fail("action", f"must be a string, not {_json_type(action)}")
    elif len(action) > MAX_ACTION_LENGTH or not ACTION_PATTERN.fullmatch(action):
        fail("action", "must be lowercase dotted words such as 'document.create' (a-z, 0-9, _)")

    _check_actor(item.get("actor"), fail)
    _check_context(item.get("context"), fail)
    entity_path = _check_entity(item.get("entity"), fail)
    _check_target(item.get("target"), fail)
    timestamp, occurred_ms = _check_timestamp(item.get("timestamp"), received, fail)
    if errors:
        return None
    assert isinstance(action, str)
    return _normalised(item, event_id, org, action, entity_path, timestamp, occurred_ms, sender_org)


class _Refused(Exception):
    """The fast check's way out: the hand-written check will say what is wrong."""


def _refuse(_field: str, _message: str) -> None:
    raise _Refused


def _accept_valid(item: Any, received: datetime, sender_org: str | None) -> ValidEvent | None:
    """The event, when the C-level check of its shape and the few checks it cannot make
    (the action's and id's patterns, a user actor's user, the IP address, the time, the
    nesting bound) all pass; else None,
    and the caller runs the hand-written check for the messages."""
    if type(item) is not dict:
        return None
    try:
        shape = msgspec.convert(item, _Event)
    except msgspec.ValidationError:
        return None
    if not ACTION_PATTERN.fullmatch(shape.action):
        return None
    if shape.id is not None and not _UUID_PATTERN.fullmatch(shape.id):
        return None
    actor = shape.actor
    if actor.type == "user" and actor.user is None:
        return None
    context = shape.context
    if context is not None and context.ip_address is not None and not _IPV4.fullmatch(context.ip_address):
        try:
            ipaddress.IPv6Address(context.ip_address)
        except ValueError:
            return None
    try:
        timestamp, occurred_ms = _check_timestamp(shape.timestamp, received, _refuse)
    except _Refused:
        return None
    event_id = shape.id.lower() if shape.id is not None else str(uuid.uuid4())
    path = shape.entity.path if shape.entity is not None else None
    entity_path = path.strip("/") if path is not None else None
    try:
        event = _normalised(
            item, event_id, shape.org, shape.action, entity_path, timestamp, occurred_ms, sender_org
        )
    except orjson.JSONEncodeError:  # nested past orjson's own bound (255 levels)
        return None
    # The nesting bound, from the serialised event: it nests no deeper than it has opening
    # brackets (those inside strings count too, so the count can only overstate it), and an
    # event rarely has more than a dozen. Only one with more is walked, level by level: the
    # walk of every event was a seventh of the event loop's time in a profile of ingest.
    body = event.body
    if body.count(b"{") + body.count(b"[") > MAX_NESTING_DEPTH and _nests_deeper(item, MAX_NESTING_DEPTH):
        return None
    return event


def _normalised(
    item: dict[str, Any],
    event_id: str,
    org: str | None,
    action: str,
    entity_path: str | None,
    timestamp: str,
    occurred_ms: int,
    sender_org: str | None,
) -> ValidEvent:
    """The accepted event, serialised once: its id first, its time in the canonical form,
    and the sender's organization written in when it named none."""
    normalised = {"id": event_id, **item}
    normalised["id"] = event_id
    normalised["timestamp"] = timestamp
    if org is None and sender_org is not None:
        org = normalised["org"] = sender_org
    return ValidEvent(
        id=event_id,
        action=action,
        entity_path=entity_path,
        occurred_at_ms=occurred_ms,
        body=orjson.dumps(normalised),
        timestamp_given=item.get("timestamp") is not None,
        org=org,
    )


def _check_id(value: Any, fail: Any) -> str:
    if value is None:
        return str(uuid.uuid4())
    if not isinstance(value, str):
        fail("id", f"must be a UUID string, not {_json_type(value)}")
        return ""
    if _UUID_PATTERN.fullmatch(value):
        return value.lower()
    fail("id", f"must be a UUID such as '806ed0d9-7d25-4df2-9a6c-f7d2f6b8dba6', got {value[:60]!r}")
    return ""


def _check_actor(actor: Any, fail: Any) -> None:
    if actor is None:
        fail("actor", "is required: who did it, for example {'type': 'user', 'user': {'id': 146}}")
        return
    if not isinstance(actor, dict):
        fail("actor", f"must be an object, not {_json_type(actor)}")
        return
    actor_type = actor.get("type")
    if actor_type not in ACTOR_TYPES:
        fail("actor.type", f"must be one of {', '.join(ACTOR_TYPES)}")
    user = actor.get("user")
    if actor_type == "user" and user is None:
        fail("actor.user", "is required when actor.type is 'user'")
    if user is not None:
        if not isinstance(user, dict):
            fail("actor.user", f"must be an object, not {_json_type(user)}")
        else:
            _check_scalar_id(user.get("id"), "actor.user.id", fail)
            for key in ("email", "name"):
                _check_optional_string(user.get(key), f"actor.user.{key}", fail)


def _check_context(context: Any, fail: Any) -> None:
    if context is None:
        return
    if not isinstance(context, dict):
        fail("context", f"must be an object, not {_json_type(context)}")
        return
    ip = context.get("ip_address")
    if ip is not None:
        if not isinstance(ip, str):
            fail("context.ip_address", f"must be a string, not {_json_type(ip)}")
        else:
            if not _IPV4.fullmatch(ip):  # the common case, checked cheaply
                try:
                    ipaddress.IPv6Address(ip)
                except ValueError:
                    fail("context.ip_address", f"is not an IPv4 or IPv6 address: {ip[:60]!r}")
    for key in ("user_agent", "session_id"):
        _check_optional_string(context.get(key), f"context.{key}", fail)
    site = context.get("site")
    if site is not None and not isinstance(site, dict):
        fail("context.site", f"must be an object, not {_json_type(site)}")


def _check_entity(entity: Any, fail: Any) -> str | None:
    if entity is None:
        return None
    if not isinstance(entity, dict):
        fail("entity", f"must be an object, not {_json_type(entity)}")
        return None
    _check_optional_string(entity.get("type"), "entity.type", fail)
    _check_scalar_id(entity.get("id"), "entity.id", fail)
    path = entity.get("path")
    _check_optional_string(path, "entity.path", fail)
    return path.strip("/") if isinstance(path, str) else None


def _check_target(target: Any, fail: Any) -> None:
    if target is None:
        return
    if not isinstance(target, dict):
        fail("target", f"must be an object, not {_json_type(target)}")
        return
    _check_optional_string(target.get("type"), "target.type", fail)
    _check_scalar_id(target.get("id"), "target.id", fail)
    _check_optional_string(target.get("name"), "target.name", fail)


def _check_timestamp(value: Any, received: datetime, fail: Any) -> tuple[str, int]:
    if type(value) is str and _CANONICAL_TS.fullmatch(value) and value >= _CANONICAL_MIN:
        # The canonical form (most senders'): RFC 3339 already, upper case, in UTC, and in
        # range (such strings sort as their times do; four digits of year end at 9999).
        try:
            return value, (datetime.fromisoformat(value) - _EPOCH) // _MILLISECOND
        except ValueError:
            pass  # a month 13, a 30 February: said below
    if value is None:
        moment = received
    elif not isinstance(value, str):
        fail("timestamp", f"must be an RFC 3339 string, not {_json_type(value)}")
        return "", 0
    else:
        try:
            if not _RFC3339.fullmatch(value):
                raise ValueError(value)
            moment = datetime.fromisoformat(value.upper())
        except ValueError:
            fail(
                "timestamp",
                f"must be RFC 3339 with a UTC offset, such as '2024-11-13T06:00:51.518Z', got {value[:60]!r}",
            )
            return "", 0
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is in the year 10000 in UTC
        utc = None
    if utc is None or not MIN_TIMESTAMP <= utc <= MAX_TIMESTAMP:
        fail("timestamp", f"must be between {TIMESTAMP_RANGE} once converted to UTC, got {str(value)[:60]!r}")
        return "", 0
    millis = utc.microsecond // 1000
    # Whole milliseconds by timedelta arithmetic: float arithmetic would be off by 1 ms at
    # times.
    epoch_ms = (utc - _EPOCH) // _MILLISECOND
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z", epoch_ms


def _nests_deeper(value: Any, levels: int) -> bool:
    """True when `value` nests more than `levels` levels of arrays and objects (a scalar: 0).

    Walks one level at a time, keeping only the containers of the next one: no recursion
    (however deep the input), and no call per scalar, which most values of an event are.
    """
    level = [value] if type(value) is dict or type(value) is list else []
    depth = 0
    while level:
        depth += 1
        if depth > levels:
            return True
        below = []
        for container in level:
            for child in container.values() if type(container) is dict else container:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        level = below
    return False


def _check_optional_string(value: Any, field: str, fail: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        fail(field, f"must be a string, not {_json_type(value)}")
    elif len(value) > MAX_STRING_LENGTH:
        fail(field, f"is longer than {MAX_STRING_LENGTH} characters")


def _check_scalar_id(value: Any, field: str, fail: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        fail(field, f"must be a string or an integer, not {_json_type(value)}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


#: Actions only the relay writes: its own audit trail.
RESERVED_PREFIX = "audit_stream."


def refuse_reserved(events: Sequence[ValidEvent]) -> None:
    """Producers may not write the relay's own audit trail (`audit_stream.*`): 422, naming
    each such event, so an ingest token cannot forge an admin's change."""
    errors = [
        FieldError(
            "action", f"{e.action!r} is reserved: audit_stream.* events are written by auditrelay only", i
        )
        for i, e in enumerate(events)
        if e.action.startswith(RESERVED_PREFIX)
    ]
    if errors:
        raise ValidationError(
            f"{len(errors)} event(s) use the reserved audit_stream.* actions; nothing was stored", errors
        )


def retention_loss_event(
    destination_id: str, name: str, kind: str, org: str | None, events: int, from_seq: int, to_seq: int
) -> ValidEvent:
    """The audit event of events removed by retention's hard maximum before a destination had
    them (`audit_stream.destination.retention_loss`): a gap in what it received, told."""
    raw = {
        "action": "audit_stream.destination.retention_loss",
        "actor": {"type": "system", "name": "auditrelay"},
        "details": {
            "destination": {"id": destination_id, "name": name, "kind": kind},
            "events": events,
            "from_seq": from_seq,
            "to_seq": to_seq,
            "reason": "older than the retention hard maximum (AUDITRELAY_RETENTION_HARD_MAX_DAYS)",
        },
        "entity": {"type": "audit_stream_destination", "id": destination_id, "path": org or ""},
    }
    return validate_events([raw], sender_org=org)[0]


def health_event(
    destination_id: str, name: str, kind: str, org: str | None, change: StateChange
) -> ValidEvent:
    """The audit event of a change of a destination's state (`audit_stream.destination.health`),
    acted by auditrelay itself: streamed like any event, so other destinations (and the
    panel) see a SIEM go down, come back, turn slow or get held."""
    raw = {
        "action": "audit_stream.destination.health",
        "actor": {"type": "system", "name": "auditrelay"},
        "details": {
            "destination": {"id": destination_id, "name": name, "kind": kind},
            "from": change.before.value,
            "to": change.after.value,
            "reason": change.reason[:2000],
        },
        "entity": {"type": "audit_stream_destination", "id": destination_id, "path": org or ""},
    }
    return validate_events([raw], sender_org=org)[0]
