"""Signing secrets and TLS settings through the API, in-process: strict validation (422
naming the field), write-only secrets masked in every answer, a generated secret shown
once, rotation, and audit events that say "changed" and never a character of a secret."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import trustme

from auditrelay.delivery import VERIFY_OFF_WARNING
from tests.api.conftest import SOMEWHERE, Api

pytestmark = pytest.mark.anyio

CA = trustme.CA()
CA_PEM = CA.cert_pem.bytes().decode()
CLIENT = CA.issue_cert("client.example")
CLIENT_CERT = "".join(blob.bytes().decode() for blob in CLIENT.cert_chain_pems)
CLIENT_KEY = CLIENT.private_key_pem.bytes().decode()
OTHER_KEY = trustme.CA().issue_cert("other.example").private_key_pem.bytes().decode()
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"o" * 24).decode()


async def create(api: Api, **settings: Any) -> Any:
    response = await api.admin(
        "POST", "/api/v1/destinations", json={"name": "signed", "kind": "http", "url": SOMEWHERE, **settings}
    )
    return response


async def patch(api: Api, destination_id: str, **settings: Any) -> Any:
    return await api.admin("PATCH", f"/api/v1/destinations/{destination_id}", json=settings)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"signing_secret": "whsec_" + base64.b64encode(b"k" * 23).decode()}, "signing_secret"),
        ({"signing_secret": "whsec_" + base64.b64encode(b"k" * 65).decode()}, "signing_secret"),
        ({"signing_secret": SECRET + "\n"}, "signing_secret"),
        ({"signing_secret": "********abcd"}, "signing_secret"),
        ({"signing_secret": "k" * 40}, "signing_secret"),
        ({"signing_secret_previous": "generate", "signing_secret": SECRET}, "signing_secret_previous"),
        ({"signing_secret_previous": SECRET}, "signing_secret_previous"),
        ({"headers": [{"name": "Webhook-Signature", "value": "v1,x"}]}, "headers.0.name"),
        ({"tls": {"ca_bundle": "not a certificate"}}, "tls.ca_bundle"),
        ({"tls": {"ca_bundle": CA_PEM.replace("A", "B", 5)}}, "tls.ca_bundle"),
        ({"tls": {"ca_bundle": CA_PEM + CLIENT_KEY}}, "tls.ca_bundle"),
        ({"tls": {"client_certificate": "-----BEGIN CERTIFICATE-----\n"}}, "tls.client_certificate"),
        ({"tls": {"client_certificate": CLIENT_CERT, "client_key": "nope"}}, "tls.client_key"),
        ({"tls": {"client_certificate": CLIENT_CERT, "client_key": OTHER_KEY}}, "tls.client_key"),
        ({"tls": {"client_certificate": CLIENT_CERT}}, "tls.client_key"),
        ({"tls": {"client_key": CLIENT_KEY}}, "tls.client_certificate"),
        ({"tls": {"client_certificate": CLIENT_CERT, "client_key": "********"}}, "tls.client_key"),
        ({"tls": {"min_version": "1.1"}}, "tls.min_version"),
        ({"tls": {"verify": "no"}}, "tls.verify"),
        ({"tls": {"ciphers": "ALL"}}, "tls.ciphers"),
    ],
)
async def test_bad_signing_and_tls_settings_are_422_naming_the_field(
    api: Api, settings: dict[str, Any], field: str
) -> None:
    before = await api.destination_count()
    response = await create(api, **settings)
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]], response.text
    assert await api.destination_count() == before
    assert CLIENT_KEY not in response.text and OTHER_KEY not in response.text


async def test_a_generated_secret_is_shown_once_then_masked_and_rotation_keeps_the_old_one(api: Api) -> None:
    response = await create(api, signing_secret="generate")
    assert response.status_code == 201, response.text
    created = response.json()
    first = created["signing_secret"]
    assert first.startswith("whsec_") and len(base64.b64decode(first[6:])) == 32
    assert created["signing_secret_previous"] is None
    path = f"/api/v1/destinations/{created['id']}"

    shown = (await api.admin("GET", path)).json()
    assert shown["signing_secret"] == "********" + first[-4:]

    # A new secret starts a rotation: the one it replaces keeps signing.
    rotated = (await patch(api, created["id"], signing_secret="generate")).json()
    second = rotated["signing_secret"]
    assert second.startswith("whsec_") and second != first
    assert rotated["signing_secret_previous"] == "********" + first[-4:]
    # Ending the rotation drops the previous one; giving both replaces outright.
    ended = (await patch(api, created["id"], signing_secret_previous=None)).json()
    assert ended["signing_secret"] == "********" + second[-4:] and ended["signing_secret_previous"] is None
    outright = (await patch(api, created["id"], signing_secret=SECRET, signing_secret_previous=None)).json()
    assert outright["signing_secret"] == "********" + SECRET[-4:]
    assert outright["signing_secret_previous"] is None
    # Signing off: both go.
    rotated = (await patch(api, created["id"], signing_secret=OTHER_SECRET)).json()
    assert rotated["signing_secret_previous"] == "********" + SECRET[-4:]
    off = (await patch(api, created["id"], signing_secret=None)).json()
    assert off["signing_secret"] is None and off["signing_secret_previous"] is None

    events = (
        await api.admin(
            "GET", "/api/v1/events", params={"action": "audit_stream.destination.*", "limit": 1000}
        )
    ).json()["events"]
    mine = [e["event"] for e in events if e["event"]["entity"]["id"] == created["id"]]
    updates = [e["details"]["changes"] for e in mine if e["action"] == "audit_stream.destination.update"]
    assert updates[0] == {"signing_secret": "changed", "signing_secret_previous": "changed"}
    assert updates[1] == {"signing_secret_previous": "changed"}
    text = str(mine)
    for secret in (first, second, SECRET, OTHER_SECRET):
        assert secret[6:] not in text and secret[-4:] not in text


async def test_tls_settings_are_kept_the_key_masked_and_verify_off_warned_of(api: Api) -> None:
    response = await create(
        api, tls={"ca_bundle": CA_PEM, "client_certificate": CLIENT_CERT, "client_key": CLIENT_KEY}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["tls"] == {
        "ca_bundle": CA_PEM,
        "client_certificate": CLIENT_CERT,
        "client_key": "********",
        "min_version": "1.2",
        "verify": True,
    }
    assert created["warnings"] == []
    assert CLIENT_KEY not in response.text

    # A PATCH of other TLS fields keeps the stored key; `verify: false` is warned of.
    response = await patch(api, created["id"], tls={"min_version": "1.3", "verify": False})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["tls"]["client_key"] == "********" and updated["tls"]["min_version"] == "1.3"
    assert updated["tls"]["verify"] is False
    assert updated["warnings"] == [VERIFY_OFF_WARNING]
    assert "verification is off" in VERIFY_OFF_WARNING

    # A new key is audited as changed, never shown; removing the certificate removes the key.
    other = CA.issue_cert("client2.example")
    other_cert = other.cert_chain_pems[0].bytes().decode()
    other_key = other.private_key_pem.bytes().decode()
    response = await patch(
        api, created["id"], tls={"client_certificate": other_cert, "client_key": other_key}
    )
    assert response.status_code == 200, response.text
    response = await patch(api, created["id"], tls={"client_certificate": None})
    assert response.status_code == 200, response.text
    assert (
        response.json()["tls"]["client_key"] is None and response.json()["tls"]["client_certificate"] is None
    )
    # `tls: null` is back to every default.
    response = await patch(api, created["id"], tls=None)
    assert response.json()["tls"] == {
        "ca_bundle": None,
        "client_certificate": None,
        "client_key": None,
        "min_version": "1.2",
        "verify": True,
    }
    assert response.json()["warnings"] == []

    events = (
        await api.admin(
            "GET", "/api/v1/events", params={"action": "audit_stream.destination.*", "limit": 1000}
        )
    ).json()["events"]
    mine = [e["event"] for e in events if e["event"]["entity"]["id"] == created["id"]]
    changes = [e["details"]["changes"] for e in mine if e["action"] == "audit_stream.destination.update"]
    assert changes[1]["tls_client_key"] == "changed"
    assert CLIENT_KEY not in str(mine) and other_key not in str(mine)
