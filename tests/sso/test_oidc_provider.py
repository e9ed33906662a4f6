"""The OpenID provider harness against a real client library: Authlib's httpx OAuth2Client runs
the authorization-code flow (state, nonce, PKCE S256) against oidc-provider, and the ID token
is checked the way Authlib 1.9 does it itself (joserfc against the provider's JWKS, then
authlib.oidc.core.CodeIDToken for iss, aud, exp, iat, nonce, azp and at_hash)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client, OAuthError
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidClaimError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from tests.sso.conftest import ACCOUNTS
from tests.support.oidc_provider import OidcProvider, OidcProviderError

SCOPE = "openid email profile"


def discover(idp: OidcProvider) -> dict[str, Any]:
    response = httpx.get(idp.discovery_url, timeout=10)
    assert response.status_code == 200, response.text
    metadata: dict[str, Any] = response.json()
    return metadata


def oauth_client(idp: OidcProvider, client_secret: str | None = None) -> OAuth2Client:
    return OAuth2Client(
        client_id=idp.client_id,
        client_secret=idp.client_secret if client_secret is None else client_secret,
        redirect_uri=idp.redirect_uri,
        scope=SCOPE,
        code_challenge_method="S256",
        timeout=10,
    )


def authorize(idp: OidcProvider, client: OAuth2Client, login: str) -> tuple[str, str, str, str]:
    """Sign `login` in through a fresh authorization request: (callback URL, state, nonce,
    code_verifier)."""
    metadata = discover(idp)
    code_verifier, nonce = generate_token(48), generate_token(24)
    url, state = client.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=code_verifier, nonce=nonce
    )
    return idp.sign_in(url, login), state, nonce, code_verifier


def validated_id_token(idp: OidcProvider, token: dict[str, Any], nonce: str) -> CodeIDToken:
    metadata = discover(idp)
    jwks = httpx.get(metadata["jwks_uri"], timeout=10).json()
    decoded = jwt.decode(
        token["id_token"], KeySet.import_key_set(jwks), registry=JWSRegistry(algorithms=["RS256"])
    )
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        {
            "iss": {"essential": True, "value": idp.issuer},
            "aud": {"essential": True, "value": idp.client_id},
        },
        {"nonce": nonce, "client_id": idp.client_id, "access_token": token["access_token"]},
    )
    claims.validate(leeway=60)
    return claims


def test_discovery_offers_the_code_flow_with_pkce_and_the_roles_claim(idp: OidcProvider) -> None:
    metadata = discover(idp)
    assert metadata["issuer"] == idp.issuer
    assert idp.issuer.startswith("http://127.0.0.1:")
    assert "code" in metadata["response_types_supported"]
    assert "S256" in metadata["code_challenge_methods_supported"]
    assert {"openid", "email", "profile"} <= set(metadata["scopes_supported"])
    assert {"email", "email_verified", "name", "auditrelay_roles"} <= set(metadata["claims_supported"])
    assert "client_secret_basic" in metadata["token_endpoint_auth_methods_supported"]


@pytest.mark.parametrize("account", ACCOUNTS[:2], ids=lambda account: account.sub)
def test_authlib_completes_the_code_flow_and_the_id_token_carries_email_and_roles(
    idp: OidcProvider, account: Any
) -> None:
    with oauth_client(idp) as client:
        callback, state, nonce, code_verifier = authorize(idp, client, account.sub)
        assert callback.split("?")[0] == idp.redirect_uri
        params = parse_qs(urlsplit(callback).query)
        assert params["state"] == [state]
        assert params["iss"] == [idp.issuer]  # RFC 9207
        assert "code" in params, params
        token = client.fetch_token(
            discover(idp)["token_endpoint"],
            authorization_response=callback,
            state=state,
            code_verifier=code_verifier,
        )
        assert token["token_type"].lower() == "bearer"
        claims = validated_id_token(idp, token, nonce)
        assert claims["sub"] == account.sub
        assert claims["nonce"] == nonce
        assert claims["email"] == account.email
        assert claims["email_verified"] is account.email_verified
        assert claims["name"] == account.name
        assert claims["auditrelay_roles"] == list(account.roles)

        # The same claims at the userinfo endpoint, with the access token.
        userinfo = client.get(discover(idp)["userinfo_endpoint"])
        assert userinfo.status_code == 200, userinfo.text
        assert userinfo.json()["auditrelay_roles"] == list(account.roles)


def test_an_account_without_roles_gets_an_empty_roles_claim(idp: OidcProvider) -> None:
    with oauth_client(idp) as client:
        callback, state, nonce, code_verifier = authorize(idp, client, "carol@example.test")
        token = client.fetch_token(
            authorization_response=callback,
            url=discover(idp)["token_endpoint"],
            state=state,
            code_verifier=code_verifier,
        )
    claims = validated_id_token(idp, token, nonce)
    assert claims["sub"] == "carol"
    assert claims["auditrelay_roles"] == []


def test_a_wrong_nonce_fails_id_token_validation(idp: OidcProvider) -> None:
    with oauth_client(idp) as client:
        callback, state, _nonce, code_verifier = authorize(idp, client, "alice")
        token = client.fetch_token(
            discover(idp)["token_endpoint"],
            authorization_response=callback,
            state=state,
            code_verifier=code_verifier,
        )
    with pytest.raises(InvalidClaimError, match="nonce"):
        validated_id_token(idp, token, "not-the-nonce")


def test_the_token_endpoint_refuses_a_wrong_client_secret(idp: OidcProvider) -> None:
    with oauth_client(idp) as honest:
        callback, state, _nonce, code_verifier = authorize(idp, honest, "alice")
    with oauth_client(idp, client_secret="not-the-secret") as client, pytest.raises(OAuthError) as refused:
        client.fetch_token(
            discover(idp)["token_endpoint"],
            authorization_response=callback,
            state=state,
            code_verifier=code_verifier,
        )
    assert refused.value.error == "invalid_client"


def test_the_token_endpoint_refuses_a_wrong_pkce_verifier(idp: OidcProvider) -> None:
    with oauth_client(idp) as client:
        callback, state, _nonce, _code_verifier = authorize(idp, client, "alice")
        with pytest.raises(OAuthError) as refused:
            client.fetch_token(
                discover(idp)["token_endpoint"],
                authorization_response=callback,
                state=state,
                code_verifier=generate_token(48),
            )
    assert refused.value.error == "invalid_grant"


def test_sign_in_fails_loudly_for_an_unknown_login(idp: OidcProvider) -> None:
    with oauth_client(idp) as client, pytest.raises(OidcProviderError, match="401"):
        authorize(idp, client, "mallory")
