"""Rendering and answer classification of each destination kind, without the network."""

from __future__ import annotations

import gzip
import random
import time
from dataclasses import replace
from typing import Any

import orjson
import pytest

from auditrelay.delivery import RetryPolicy, retry_delay
from auditrelay.destinations import (
    KINDS,
    USER_AGENT,
    EventFilter,
    Outcome,
    classify_status,
    parse_retry_after,
)
from auditrelay.destinations.splunk_hec import event_url, hec_token
from auditrelay.model import BatchSettings, Destination, Header, StoredEvent
from tests.support import split_concatenated_json


def destination(kind: str, **overrides: Any) -> Destination:
    values: dict[str, Any] = {
        "id": "d1",
        "org": None,
        "name": "n",
        "kind": kind,
        "url": "https://siem.example.com",
        "token": None,
        "headers": (Header("X-A", "1"),),
        "event_types": (),
        "namespaces": (),
        "content_type": None,
        "verification_token": "v" * 20,
        "active": True,
        "options": {},
        "batch": BatchSettings(max_events=3, max_bytes=10_000, linger_ms=0),
    }
    values.update(overrides)
    return Destination(**values)


def stored(seq: int, action: str = "a.b", path: str | None = None, org: str | None = None) -> StoredEvent:
    body = orjson.dumps({"id": f"id-{seq}", "action": action})
    return StoredEvent(seq, org, action, path, 1731477651518 + seq, body)


def test_http_sends_one_event_per_request_by_default() -> None:
    requests = list(KINDS["http"].requests(destination("http", token="Bearer t"), [stored(1), stored(2)]))
    assert [r.content for r in requests] == [stored(1).body, stored(2).body]
    assert requests[0].headers["Authorization"] == "Bearer t"
    assert requests[0].headers["X-Auditrelay-Streaming-Token"] == "v" * 20
    assert requests[0].headers["X-A"] == "1"


@pytest.mark.parametrize(
    ("kind", "options", "content_type"),
    [
        ("http", {}, "application/json"),
        ("http", {"batch_format": "json_array"}, "application/json"),
        ("http", {"batch_format": "ndjson"}, "application/x-ndjson"),
        ("splunk_hec", {}, "application/json"),
        ("sumo_logic", {}, "application/x-ndjson"),
    ],
)
def test_every_request_names_its_content_type_and_user_agent(
    kind: str, options: dict[str, str], content_type: str
) -> None:
    # The sender never fills these in: the HTTP layer's defaults would be wrong.
    token = "Splunk t" if kind == "splunk_hec" else None
    default = next(KINDS[kind].requests(destination(kind, options=options, token=token), [stored(1)]))
    assert default.headers["Content-Type"] == content_type
    assert default.headers["User-Agent"] == USER_AGENT
    d = destination(kind, options=options, token=token, content_type="application/vnd.siem+json")
    chosen = next(KINDS[kind].requests(d, [stored(1)]))
    assert chosen.headers["Content-Type"] == "application/vnd.siem+json"


def test_http_batches_respect_max_events_and_max_bytes() -> None:
    d = destination("http", options={"batch_format": "json_array"})
    requests = list(KINDS["http"].requests(d, [stored(i) for i in range(7)]))
    assert [len(orjson.loads(r.content)) for r in requests] == [3, 3, 1]
    d = destination("http", options={"batch_format": "ndjson"}, batch=BatchSettings(100, 60, 0))
    requests = list(KINDS["http"].requests(d, [stored(i) for i in range(5)]))
    assert all(len(r.content) <= 60 or len(r.events) == 1 for r in requests)
    assert b"".join(r.content for r in requests).count(b"\n") == 5


def test_hec_envelope_time_fields_and_concatenation() -> None:
    d = destination(
        "splunk_hec",
        token="Splunk abc",
        options={"index": "main", "source": "s", "sourcetype": "st", "host": "h"},
    )
    (request,) = KINDS["splunk_hec"].requests(d, [stored(1), stored(2)])
    assert request.url == "https://siem.example.com/services/collector/event"
    assert request.headers["Authorization"] == "Splunk abc"
    envelopes = split_concatenated_json(request.content)
    assert b"}{" in request.content and not request.content.startswith(b"[")
    assert envelopes[0] == {
        "time": 1731477651.519,
        "host": "h",
        "source": "s",
        "sourcetype": "st",
        "index": "main",
        "event": {"id": "id-1", "action": "a.b"},
    }


def test_hec_token_prefix_and_url_rules() -> None:
    assert hec_token("Splunk abc") == hec_token("abc") == hec_token("  splunk   abc ") == "abc"
    assert event_url("https://h:8088") == "https://h:8088/services/collector/event"
    assert event_url("https://h:8088/") == "https://h:8088/services/collector/event"
    assert event_url("https://h/services/collector") == "https://h/services/collector"


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (200, b'{"text":"Success","code":0}', Outcome.DELIVERED),
        (200, b"", Outcome.DELIVERED),
        (401, b'{"text":"Token is required","code":2}', Outcome.UNAUTHORIZED),
        (403, b'{"text":"Invalid token","code":4}', Outcome.UNAUTHORIZED),
        (403, b'{"text":"Token disabled","code":1}', Outcome.UNAUTHORIZED),
        (400, b'{"text":"Invalid data format","code":6}', Outcome.REJECTED),
        (400, b'{"text":"Incorrect index","code":7}', Outcome.REJECTED),
        (500, b'{"text":"Internal server error","code":8}', Outcome.RETRY),
        (503, b'{"text":"Server is busy","code":9}', Outcome.RETRY),
        (503, b'{"text":"HEC is unhealthy, queues are full","code":18}', Outcome.RETRY),
        (200, b'{"text":"Server is busy","code":9}', Outcome.RETRY),
    ],
)
def test_hec_answers_are_classified_by_their_code(status: int, body: bytes, outcome: Outcome) -> None:
    assert KINDS["splunk_hec"].verdict(status, {}, body).outcome is outcome


def test_sumo_sends_gzip_ndjson_and_metadata_headers() -> None:
    d = destination(
        "sumo_logic", options={"category": "c", "source_name": "n", "source_host": "h", "fields": "a=b"}
    )
    (request,) = KINDS["sumo_logic"].requests(d, [stored(1), stored(2)])
    assert gzip.decompress(request.content) == stored(1).body + b"\n" + stored(2).body + b"\n"
    assert request.headers["Content-Encoding"] == "gzip"
    assert (
        request.headers["X-Sumo-Category"],
        request.headers["X-Sumo-Name"],
        request.headers["X-Sumo-Host"],
        request.headers["X-Sumo-Fields"],
    ) == ("c", "n", "h", "a=b")


def test_sumo_requests_stay_within_1_mb_uncompressed_whatever_the_batch_allows() -> None:
    """Sumo Logic recommends at most 1 MB of uncompressed data per request; a destination's
    batch may allow 10 MB, the kind caps each request anyway."""
    big = [
        StoredEvent(n, None, "a.b", None, 0, orjson.dumps({"id": f"id-{n}", "pad": "x" * 200_000}))
        for n in range(1, 13)
    ]
    d = destination("sumo_logic", batch=BatchSettings(max_events=1000, max_bytes=10_000_000, linger_ms=0))
    requests = list(KINDS["sumo_logic"].requests(d, big))
    sizes = [len(gzip.decompress(r.content)) for r in requests]
    assert len(requests) > 1 and max(sizes) <= 1_000_000, sizes
    assert [e.seq for r in requests for e in r.events] == list(range(1, 13)), "all of them, in order"
    # Without the cap (another kind with the same batch), one request would take them all.
    (one,) = KINDS["http"].requests(replace(d, kind="http", options={"batch_format": "ndjson"}), big)
    assert len(one.content) > 2_000_000


def test_kinds_declare_how_they_batch_and_read() -> None:
    per_event = destination("http", batch=BatchSettings(max_events=100, max_bytes=1_000_000, linger_ms=5))
    batching = replace(per_event, options={"batch_format": "json_array"})
    assert KINDS["http"].one_event_per_request(per_event) and KINDS["http"].read_limit(per_event) == 100
    assert not KINDS["http"].one_event_per_request(batching) and KINDS["http"].read_limit(batching) == 1000
    hec = replace(per_event, kind="splunk_hec", token="t")
    assert not KINDS["splunk_hec"].one_event_per_request(hec)


def test_status_classification_and_retry_after() -> None:
    assert classify_status(204, {}, b"").outcome is Outcome.DELIVERED
    assert classify_status(408, {}, b"").outcome is Outcome.RETRY
    assert classify_status(429, {"retry-after": "7"}, b"").retry_after == 7
    assert classify_status(302, {"location": "/x"}, b"").outcome is Outcome.RETRY
    assert classify_status(404, {}, b"").outcome is Outcome.REJECTED
    assert classify_status(413, {}, b"").outcome is Outcome.REJECTED
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None


def test_retry_after_is_read_strictly_and_anything_else_is_ignored() -> None:
    assert parse_retry_after(" 120 ") == 120.0
    assert parse_retry_after("9" * 5000) == 1e15  # no int() of 5,000 digits, no infinity
    in_an_hour = time.time() + 3600
    for form in ("%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"):
        text = time.strftime(form, time.gmtime(in_an_hour))
        wait = parse_retry_after(text)
        assert wait is not None and 3590 < wait <= 3600, text
    # "²" and "١٢" are digits to str.isdigit(), not to int(); the rest is not RFC 9110.
    for odd in (
        "²",
        "١٢",
        "1.5",
        "-1",
        "+3",
        "12 s",
        "0x10",
        "Wed, 21 Oct 2015",
        "Wed, 21 Oct 2015 07:28:00 CET",
        "Wed, 21 Oct 2015 07:28:00 GMT x",
        "Wéd, 21 Oct 2015 07:28:00 GMT",
        "\udcb2",
    ):
        assert parse_retry_after(odd) is None, odd
        assert classify_status(503, {"retry-after": odd}, b"").retry_after is None


POLICY = RetryPolicy(initial_seconds=1.0, max_seconds=300.0, unauthorized_seconds=60.0)


def test_retry_delay_grows_with_jitter_caps_and_honours_retry_after() -> None:
    rng = random.Random(1)
    delays = [retry_delay(Outcome.RETRY, n, None, POLICY, rng) for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        base = min(300.0, 2 ** (n - 1))
        assert base / 2 <= delay <= base
    assert retry_delay(Outcome.RETRY, 3, 42.0, POLICY) == 42.0
    assert retry_delay(Outcome.UNAUTHORIZED, 1, None, POLICY) == 60.0


def test_filters_exact_prefix_namespace_and_org() -> None:
    f = EventFilter(None, ("user.login", "document.*"), ())
    assert f.matches(stored(1, "user.login")) and f.matches(stored(1, "document.acl.set"))
    assert not f.matches(stored(1, "user.logout")) and not f.matches(stored(1, "documents.x"))
    assert not f.matches(stored(1, "document"))
    f = EventFilter(None, (), ("acme/web",))
    assert f.matches(stored(1, path="acme/web")) and f.matches(stored(1, path="acme/web/api"))
    assert not f.matches(stored(1, path="acme/webshop")) and not f.matches(stored(1, path=None))
    f = EventFilter("acme", (), ())
    assert f.matches(stored(1, org="acme")) and not f.matches(stored(1, org="other"))
    assert not f.matches(stored(1, org=None))
    assert EventFilter(None, ("*",), ()).matches(stored(1, "any.thing"))


def test_importing_a_kind_loads_neither_the_database_nor_an_http_client() -> None:
    """Kinds are pure: rendering a batch and reading an answer need no driver or client."""
    import subprocess
    import sys

    probe = (
        "import sys, auditrelay.destinations.splunk_hec, auditrelay.destinations.sumo_logic; "
        "heavy = ('sqlalchemy', 'psycopg', 'aiohttp', 'alembic', 'httpx'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
    # The probe can see a loaded module: the same check on the store finds SQLAlchemy.
    store = probe.replace("auditrelay.destinations.splunk_hec", "auditrelay.store")
    loaded = subprocess.run([sys.executable, "-c", store], capture_output=True, text=True, check=True)
    assert "sqlalchemy" in loaded.stdout
