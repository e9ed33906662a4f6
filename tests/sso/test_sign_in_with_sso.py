"""Single sign-on end to end: the real service (two worker processes) and a real OpenID
provider (oidc-provider on Node). The browser's part is played over plain HTTP: follow the
service's redirect to the provider, sign in there, come back with the code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support import Service
from tests.support.oidc_provider import OidcAccount, OidcProvider
from tests.support.sso import service_with_sso

ACCOUNTS = (
    OidcAccount(sub="alice", email="alice@example.test", name="Alice Admin", roles=("admin",)),
    OidcAccount(
        sub="dave", email="dave@example.test", name="Dave Owner", roles=("acme:owner", "gone:viewer")
    ),
    OidcAccount(sub="bob", email="bob@example.test", email_verified=False, roles=("acme:owner",)),
    OidcAccount(sub="carol", email="carol@example.test", name="Carol Nobody"),
)


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, OidcProvider]]:
    with service_with_sso(
        Path(tmp_path_factory.mktemp("sso")), ACCOUNTS, "acme", "auditrelay-sso", "s3cret-of-the-client"
    ) as pair:
        yield pair


def cookie_of(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(name + "="):
            return header.split(";")[0].split("=", 1)[1]
    raise AssertionError(f"no {name} cookie in {response.headers}")


def sign_in_with_sso(
    service: Service, idp: OidcProvider, login: str, after: str = "/admin"
) -> httpx.Response:
    """The browser's round trip; returns the service's answer at the callback."""
    start = httpx.get(service.base_url + "/api/v1/session/sso", params={"next": after})
    assert start.status_code == 302, start.text
    location = start.headers["location"]
    assert location.startswith(idp.issuer + "/")
    query = parse_qs(urlsplit(location).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    flow = cookie_of(start, "auditrelay_sso")
    back = idp.sign_in(location, login)
    return httpx.get(back, headers={"Cookie": f"auditrelay_sso={flow}"})


def session_headers(answer: httpx.Response) -> dict[str, str]:
    assert answer.status_code == 303, answer.text
    return {"Cookie": "auditrelay_session=" + cookie_of(answer, "auditrelay_session")}


def test_an_admin_signs_in_with_sso_and_the_roles_claim_decides(sso: tuple[Service, OidcProvider]) -> None:
    service, idp = sso
    answer = sign_in_with_sso(service, idp, "alice", after="/admin/log-streaming")
    assert answer.headers["location"] == "/admin/log-streaming"
    set_cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith("auditrelay_session="))
    assert "HttpOnly" in set_cookie and "Secure" in set_cookie and "SameSite=lax" in set_cookie
    with httpx.Client(base_url=service.base_url, headers=session_headers(answer)) as browser:
        me = browser.get("/api/v1/session").json()
        assert me["user"]["email"] == "alice@example.test" and me["role"] == "admin" and me["via"] == "sso"
        assert me["user"]["sso"] is True and me["user"]["password"] is False
        assert browser.get("/api/v1/users").status_code == 200
        csrf = {"X-CSRF-Token": me["csrf_token"]}
        assert browser.delete("/api/v1/session", headers=csrf).json() == {"signed_out": True}
        assert browser.get("/api/v1/destinations").status_code == 401
    with service.admin() as admin:
        trail = admin.get("/api/v1/events", params={"action": "audit_stream.user.*", "limit": 1000}).json()
    alice = [
        e["event"] for e in trail["events"] if e["event"]["details"]["user"]["email"] == "alice@example.test"
    ]
    assert [e["action"] for e in alice][:2] == ["audit_stream.user.create", "audit_stream.user.sign_in"]
    assert alice[-1]["action"] == "audit_stream.user.sign_out"


def test_an_owner_gets_the_memberships_of_existing_organizations(sso: tuple[Service, OidcProvider]) -> None:
    service, idp = sso
    with httpx.Client(
        base_url=service.base_url, headers=session_headers(sign_in_with_sso(service, idp, "dave"))
    ) as b:
        me = b.get("/api/v1/session").json()
    assert me["role"] == "owner" and me["org"] == "acme"
    assert me["orgs"] == [{"org": "acme", "role": "owner"}], "'gone' is no organization: left out"
    # Signing in again finds the same person (linked by issuer and subject).
    again = sign_in_with_sso(service, idp, "dave")
    with httpx.Client(base_url=service.base_url, headers=session_headers(again)) as b:
        assert b.get("/api/v1/session").json()["user"]["id"] == me["user"]["id"]


def test_an_existing_account_is_linked_by_its_verified_email(sso: tuple[Service, OidcProvider]) -> None:
    service, idp = sso
    with service.admin() as admin:
        made = admin.post(
            "/api/v1/users", json={"email": "carol@example.test", "password": "a long enough password"}
        )
        assert made.status_code == 201, made.text
    answer = sign_in_with_sso(service, idp, "carol")
    with httpx.Client(base_url=service.base_url, headers=session_headers(answer)) as b:
        me = b.get("/api/v1/session").json()
        assert me["user"]["id"] == made.json()["id"] and me["user"]["sso"] is True
        # Carol's token carries an empty roles claim: no organization, nothing to see.
        assert me["role"] is None
        refused = b.get("/api/v1/destinations")
        assert refused.status_code == 403 and "no organization" in refused.json()["detail"]


def test_refusals_unverified_email_forged_state_and_no_flow(sso: tuple[Service, OidcProvider]) -> None:
    service, idp = sso
    unverified = sign_in_with_sso(service, idp, "bob")
    assert unverified.status_code == 403 and "not verified" in unverified.json()["detail"]
    # A callback whose state is not the one this browser started with.
    start = httpx.get(service.base_url + "/api/v1/session/sso")
    back = idp.sign_in(start.headers["location"], "alice")
    other_flow = cookie_of(httpx.get(service.base_url + "/api/v1/session/sso"), "auditrelay_sso")
    forged = httpx.get(back, headers={"Cookie": f"auditrelay_sso={other_flow}"})
    assert forged.status_code == 401 and "state" in forged.json()["detail"]
    assert httpx.get(back).status_code == 401, "no sign-in in progress in this browser"
    assert "set-cookie" not in forged.headers or "auditrelay_session" not in forged.headers["set-cookie"]
    # An open redirect is not offered: only this service's paths.
    start = httpx.get(service.base_url + "/api/v1/session/sso", params={"next": "https://evil.example/"})
    answer = httpx.get(
        idp.sign_in(start.headers["location"], "alice"),
        headers={"Cookie": "auditrelay_sso=" + cookie_of(start, "auditrelay_sso")},
    )
    assert answer.headers["location"] == "/admin"
