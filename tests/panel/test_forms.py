"""The panel's destination form: the body it makes for the API, and where errors go."""

from __future__ import annotations

from auditrelay.errors import FieldError
from auditrelay.panel.forms import DestinationForm


def test_a_posted_form_makes_the_create_body() -> None:
    form = DestinationForm.from_post(
        {
            "kind": ["splunk_hec"],
            "name": [" Splunk prod "],
            "url": ["https://splunk.example.com:8088"],
            "token": ["Splunk abc"],
            "event_types": ["document.*\nuser.create, user.delete"],
            "namespaces": [""],
            "headers-0-name": ["X-Env"],
            "headers-0-value": ["demo"],
            "headers-3-name": ["X-Api-Key"],
            "headers-3-value": ["k"],
            "headers-3-secret": ["on"],
            "headers-5-name": [""],  # an empty row is left out
            "headers-5-value": [""],
            "opt-splunk_hec-index": ["main"],
            "opt-http-batch_format": ["ndjson"],  # another kind's option: not sent
        }
    )
    body = form.create_body()
    assert body["name"] == "Splunk prod" and body["token"] == "Splunk abc"
    assert body["event_types"] == ["document.*", "user.create", "user.delete"]
    assert body["headers"] == [
        {"name": "X-Env", "value": "demo", "secret": False},
        {"name": "X-Api-Key", "value": "k", "secret": True},
    ]
    assert body["options"] == {"index": "main"} and "namespaces" in body


def test_an_edit_keeps_what_was_shown_masked() -> None:
    current = {
        "kind": "http",
        "name": "n",
        "url": "https://example.com/in?********",
        "token": "********abcd",
        "content_type": None,
        "verification_token": "v" * 20,
        "org": None,
        "event_types": [],
        "namespaces": [],
        "headers": [{"name": "X-Api-Key", "value": "********1234", "secret": True}],
        "options": {"batch_format": "none"},
    }
    shown = DestinationForm.from_destination(current)
    posted = DestinationForm.from_post(
        {
            "kind": ["http"],
            "name": ["n"],
            "url": [shown.url],
            "shown_url": [shown.shown_url],
            "token": [""],
            "token_masked": [shown.token_masked],
            "headers-0-name": ["X-Api-Key"],
            "headers-0-value": [""],
            "headers-0-secret": ["on"],
            "headers-0-stored": ["********1234"],
        }
    )
    patch = posted.patch_body(current)
    assert "url" not in patch and "token" not in patch  # unchanged: never the masked text
    assert patch["headers"] == [{"name": "X-Api-Key", "secret": True}]  # its stored value is kept


def test_errors_go_next_to_their_field() -> None:
    form = DestinationForm(headers=[])
    form.headers = DestinationForm.from_post({"headers-0-name": ["A"], "headers-1-name": ["B"]}).headers
    form.add_errors(
        [
            FieldError("url", "bad url"),
            FieldError("headers.1.name", "bad name"),
            FieldError("headers.A", "a value is required"),
            FieldError("options.index", "too long"),
            FieldError("something.else", "what"),
        ],
        "detail",
    )
    assert form.errors == {
        "url": ["bad url"],
        "headers-1": ["bad name"],
        "headers-0": ["a value is required"],
        f"opt-{form.kind}-index": ["too long"],
        "": ["what"],
    }
