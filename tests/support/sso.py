"""The service with single sign-on through the real OpenID provider (`oidc_provider`): the
setup the SSO tests over HTTP and the panel's browser tests share."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.support.oidc_provider import OidcAccount, OidcClient, OidcProvider, oidc_provider
from tests.support.service import Service


@contextmanager
def service_with_sso(
    data_dir: Path, accounts: Sequence[OidcAccount], org: str, client_id: str, client_secret: str
) -> Iterator[tuple[Service, OidcProvider]]:
    """A started service (SQLite in `data_dir`) whose sign-in goes through a provider that
    knows `accounts`, with the organization `org` created; both stopped afterwards."""
    service = Service(data_dir, "")
    callback = service.base_url + "/api/v1/session/sso/callback"
    client = OidcClient(client_id=client_id, client_secret=client_secret, redirect_uris=(callback,))
    with oidc_provider(client, accounts) as idp:
        service.extra_env.update(
            {
                "AUDITRELAY_OIDC_ISSUER": idp.issuer,
                "AUDITRELAY_OIDC_CLIENT_ID": client.client_id,
                "AUDITRELAY_OIDC_CLIENT_SECRET": client.client_secret,
            }
        )
        service.start()
        try:
            service.ensure_org(org)
            yield service, idp
        finally:
            service.stop()
