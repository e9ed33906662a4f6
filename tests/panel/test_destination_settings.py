"""The destination form's batching, delivery, TLS and signing sections: the body they make
for the API, what an edit keeps, where the API's errors for nested fields go, and `back`."""

from __future__ import annotations

from typing import Any

import pytest
import trustme

from auditrelay.errors import FieldError
from auditrelay.panel.forms import DestinationForm, FormInvalid, local_back, validated, with_done
from auditrelay.services import DestinationCreate, DestinationPatch

CA = trustme.CA()
CA_PEM = CA.cert_pem.bytes().decode()
CLIENT = CA.issue_cert("relay.client.example")
CLIENT_CERT = CLIENT.cert_chain_pems[0].bytes().decode()
CLIENT_KEY = CLIENT.private_key_pem.bytes().decode()
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def posted(**fields: str) -> DestinationForm:
    base = {"kind": "http", "name": "n", "url": "https://example.com/in"}
    return DestinationForm.from_post({k.replace("__", "-"): [v] for k, v in {**base, **fields}.items()})


def saved(**overrides: Any) -> dict[str, Any]:
    """A destination as the service shows it (secrets masked)."""
    return {
        "kind": "http",
        "name": "n",
        "url": "https://example.com/in",
        "token": None,
        "content_type": None,
        "verification_token": "v" * 20,
        "org": None,
        "event_types": [],
        "namespaces": [],
        "headers": [],
        "options": {},
        "batch": {"max_events": 100, "max_bytes": 1_000_000, "linger_ms": 5},
        "delivery": {"ordered": False, "max_in_flight": 100},
        "tls": {
            "ca_bundle": CA_PEM,
            "client_certificate": CLIENT_CERT,
            "client_key": "********",
            "min_version": "1.2",
            "verify": True,
        },
        "signing_secret": "********aSw=",
        "signing_secret_previous": None,
        **overrides,
    }


def test_a_new_destination_sends_only_the_settings_given() -> None:
    assert "batch" not in posted().create_body() and "tls" not in posted().create_body()
    body = posted(
        batch__max_events="250",
        batch__linger_ms="0",
        delivery__ordered="on",
        delivery__max_in_flight="8",
        tls__ca_bundle=CA_PEM.replace("\n", "\r\n"),  # as a browser sends a textarea
        tls__client_certificate=CLIENT_CERT,
        tls__client_key=CLIENT_KEY,
        tls__min_version="1.3",
        tls__verify="off",
        signing_secret=SECRET,
    ).create_body()
    assert body["batch"] == {"max_events": "250", "linger_ms": "0"}
    assert body["delivery"] == {"ordered": True, "max_in_flight": "8"}
    assert body["tls"] == {
        "ca_bundle": CA_PEM.strip(),
        "client_certificate": CLIENT_CERT.strip(),
        "client_key": CLIENT_KEY.strip(),
        "min_version": "1.3",
        "verify": False,
    }
    assert body["signing_secret"] == SECRET
    made = validated(DestinationCreate, body)  # what the API accepts, as it would
    assert made.batch.max_events == 250 and made.tls.verify is False and made.delivery.ordered


def test_generate_asks_the_service_for_a_secret() -> None:
    assert posted(signing__generate="on", signing_secret=SECRET).create_body()["signing_secret"] == "generate"


def test_an_edit_shows_the_saved_settings_and_sends_back_nothing_unchanged() -> None:
    current = saved()
    shown = DestinationForm.from_destination(current)
    s = shown.settings
    assert s.batch == {"max_events": "100", "max_bytes": "1000000", "linger_ms": "5"}
    assert s.ca_bundle == CA_PEM and s.client_key == "" and s.client_key_stored
    assert s.signing_masked == "********aSw="
    # The page as shown, posted back: every field as it was, the key and secret left empty.
    again = posted(
        batch__max_events="100",
        batch__max_bytes="1000000",
        batch__linger_ms="5",
        delivery__max_in_flight="100",
        tls__ca_bundle=CA_PEM.replace("\n", "\r\n"),
        tls__client_certificate=CLIENT_CERT,
        tls__min_version="1.2",
        signing_secret="",
    )
    patch = again.patch_body(current)
    assert not {"batch", "delivery", "tls", "signing_secret", "signing_secret_previous"} & set(patch)


def test_an_edit_sends_what_changed_and_removes_what_was_emptied() -> None:
    current = saved(signing_secret_previous="********xyz=")
    patch = posted(
        batch__max_events="100",
        batch__max_bytes="2000000",
        delivery__ordered="on",
        tls__ca_bundle="",  # emptied: back to the system's CAs
        tls__client_certificate=CLIENT_CERT,
        tls__client_key=CLIENT_KEY,
        tls__verify="off",
        signing__off="on",
        signing__previous__drop="on",
    ).patch_body(current)
    assert patch["batch"] == {"max_bytes": "2000000"}
    assert patch["delivery"] == {"ordered": True}
    assert patch["tls"] == {"ca_bundle": None, "client_key": CLIENT_KEY.strip(), "verify": False}
    assert patch["signing_secret"] is None and patch["signing_secret_previous"] is None
    validated(DestinationPatch, patch)


def test_the_apis_errors_for_nested_fields_go_next_to_their_field() -> None:
    form = posted(batch__max_events="0", tls__ca_bundle="not a certificate", signing_secret="whsec_short")
    with pytest.raises(FormInvalid) as refused:
        validated(DestinationCreate, form.create_body())
    form.add_errors(refused.value.errors, refused.value.detail)
    assert set(form.errors) == {"batch-max_events", "tls-ca_bundle", "signing_secret"}
    assert "must be PEM certificates" in form.errors["tls-ca_bundle"][0]
    assert form.section_open("tls") and form.section_open("batch") and form.section_open("signing")
    assert not form.section_open("delivery")


@pytest.mark.parametrize(
    ("field", "where"),
    [
        ("batch.max_events", "batch-max_events"),
        ("batch.max_bytes", "batch-max_bytes"),
        ("batch.linger_ms", "batch-linger_ms"),
        ("batch", "batch"),
        ("delivery.max_in_flight", "delivery-max_in_flight"),
        ("delivery.ordered", "delivery-ordered"),
        ("tls.ca_bundle", "tls-ca_bundle"),
        ("tls.client_certificate", "tls-client_certificate"),
        ("tls.client_key", "tls-client_key"),
        ("tls.min_version", "tls-min_version"),
        ("tls.verify", "tls-verify"),
        ("tls.something_new", "tls"),
        ("tls", "tls"),
        ("signing_secret", "signing_secret"),
        ("signing_secret_previous", "signing_secret_previous"),
    ],
)
def test_each_settings_field_of_the_api_has_its_input(field: str, where: str) -> None:
    form = DestinationForm()
    form.add_errors([FieldError(field, "wrong")], "detail")
    assert form.errors == {where: ["wrong"]}


@pytest.mark.parametrize(
    ("back", "goes"),
    [
        (None, "/admin/log-streaming"),
        ("", "/admin/log-streaming"),
        ("/admin/log-streaming/abc", "/admin/log-streaming/abc"),
        ("/admin/events?action=x", "/admin/events?action=x"),
        ("https://evil.example/admin/", "/admin/log-streaming"),
        ("//evil.example/admin/", "/admin/log-streaming"),
        ("/admin\\@evil.example", "/admin/log-streaming"),
        ("/admin/\r\nLocation: x", "/admin/log-streaming"),
        ("/adminx", "/admin/log-streaming"),
        ("/api/v1/destinations", "/admin/log-streaming"),
    ],
)
def test_back_is_a_panel_path_only(back: str | None, goes: str) -> None:
    assert local_back(back) == goes


def test_back_says_what_was_done_there() -> None:
    assert with_done("/admin/log-streaming", "saved") == "/admin/log-streaming?done=saved"
    assert with_done("/admin/log-streaming/abc?tab=x&done=old#top", "saved") == (
        "/admin/log-streaming/abc?tab=x&done=saved"
    )
    assert with_done("https://evil.example/", "saved") == "/admin/log-streaming?done=saved"


def test_a_closed_section_says_what_it_holds() -> None:
    assert posted().settings.summaries() == {
        "batch": "the kind's defaults",
        "delivery": "the defaults",
        "tls": "the defaults (the system's CAs)",
        "signing": "off",
    }
    shown = DestinationForm.from_destination(
        saved(delivery={"ordered": True, "max_in_flight": 3}, signing_secret_previous="********xyz=")
    )
    said = shown.settings.summaries()
    assert said["batch"] == "100 events · 1,000,000 bytes · 5 ms"
    assert said["delivery"] == "ordered, up to 3 in flight"
    assert said["tls"] == "own CAs, client certificate"
    assert said["signing"] == "on, rotating"
    assert posted(tls__verify="off", signing__generate="on").settings.summaries()["tls"] == (
        "certificate NOT checked"
    )
