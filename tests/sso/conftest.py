"""Fixtures for the SSO tests: a real OpenID provider (oidc-provider on Node) on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.oidc_provider import OidcAccount, OidcClient, OidcProvider, oidc_provider

#: The accounts the `idp` fixture knows; sign in with their sub.
ACCOUNTS = (
    OidcAccount(sub="alice", email="alice@example.test", name="Alice Admin", roles=("admin",)),
    OidcAccount(
        sub="bob", email="bob@example.test", name="Bob Owner", email_verified=False, roles=("acme:owner",)
    ),
    OidcAccount(sub="carol", email="carol@example.test", name="Carol Nobody"),
)


@pytest.fixture(scope="session")
def idp() -> Iterator[OidcProvider]:
    """One provider for the session, with `OidcClient()`'s client and `ACCOUNTS`."""
    with oidc_provider(OidcClient(), ACCOUNTS) as provider:
        yield provider
