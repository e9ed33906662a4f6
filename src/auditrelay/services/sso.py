"""Single sign-on with OpenID Connect: the authorization-code flow with PKCE, by Authlib.

- `start` builds the provider's authorization URL with a fresh state, nonce and PKCE
  verifier, which travel sealed (encrypted and authenticated with the service's secret key)
  in a short-lived cookie: no table, and any worker process can finish the sign-in.
- `finish` checks the state, exchanges the code (the client secret at the token endpoint),
  and validates the ID token as Authlib does itself: its signature against the provider's
  JWKS (joserfc), then issuer, audience, expiry, nonce and `at_hash` (Authlib's
  `CodeIDToken`).
- The person is the one linked to this identity (issuer and `sub`), else the account with
  the same email once the provider says it verified it (then linked), else a new account.
- Roles: when the ID token carries the roles claim (`AUDITRELAY_OIDC_ROLES_CLAIM`, a list
  such as `["admin"]` or `["acme:owner", "globex:viewer"]`), it decides, at every sign-in:
  admin or not, and the memberships of existing organizations. Without the claim, roles
  are what admins granted in auditrelay.

Authlib, joserfc and the HTTP client under them (about 11 MB and a second of start-up per
process) are imported at the first sign-in, not with this module: most instances have no
single sign-on, and every worker process would carry them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from auditrelay.config import Settings
from auditrelay.errors import Forbidden, NotFound, Unauthenticated
from auditrelay.model import Membership, UserRecord
from auditrelay.security import SecretBox
from auditrelay.services.audit import RequestContext, user_audit_event
from auditrelay.store import Database, sso_sign_in, start_session

if TYPE_CHECKING:
    from authlib.integrations.httpx_client import AsyncOAuth2Client
    from joserfc.jwk import KeySet

log = logging.getLogger(__name__)

#: How long a person may take at the provider between leaving and coming back.
FLOW_SECONDS = 600
#: Provider metadata and keys are re-read this often (and at once on an unknown key id).
METADATA_SECONDS = 3600
CALLBACK_PATH = "/api/v1/session/sso/callback"


@dataclass(frozen=True, slots=True)
class SsoIdentity:
    """What the ID token says about the person."""

    subject: str
    email: str
    email_verified: bool
    name: str | None
    #: None when the token has no roles claim (then auditrelay's own grants apply).
    roles: tuple[str, ...] | None


class SsoService:
    def __init__(self, db: Database, settings: Settings, box: SecretBox) -> None:
        self._db = db
        self._settings = settings
        self._box = box
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._fetched_at = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self._settings.oidc_issuer)

    @property
    def redirect_uri(self) -> str:
        return self._settings.public_base_url + CALLBACK_PATH

    def _client(self) -> AsyncOAuth2Client:
        from authlib.integrations.httpx_client import AsyncOAuth2Client

        settings = self._settings
        return AsyncOAuth2Client(
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            scope=settings.oidc_scopes,
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            timeout=10,
        )

    async def _discovered(self, client: AsyncOAuth2Client, refresh: bool = False) -> dict[str, Any]:
        if self._metadata is None or refresh or time.monotonic() - self._fetched_at > METADATA_SECONDS:
            from joserfc.jwk import KeySet

            issuer = self._settings.oidc_issuer.rstrip("/")
            response = await client.request(
                "GET", issuer + "/.well-known/openid-configuration", withhold_token=True
            )
            response.raise_for_status()
            metadata: dict[str, Any] = response.json()
            keys = await client.request("GET", metadata["jwks_uri"], withhold_token=True)
            keys.raise_for_status()
            self._metadata, self._keys = metadata, KeySet.import_key_set(keys.json())
            self._fetched_at = time.monotonic()
        return self._metadata

    async def start(self, after: str) -> tuple[str, bytes]:
        """The provider's authorization URL, and the sealed flow state for the cookie."""
        from authlib.common.security import generate_token

        self._require_enabled()
        verifier, nonce = generate_token(48), generate_token(24)
        async with self._client() as client:
            metadata = await self._unavailable_is_503(self._discovered(client))
            url, state = client.create_authorization_url(
                metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce
            )
        flow = {"state": state, "nonce": nonce, "verifier": verifier, "after": after, "at": time.time()}
        return url, self._box.seal(flow)

    async def finish(
        self, sealed_flow: bytes | None, callback_url: str, params: dict[str, str], ctx: RequestContext
    ) -> tuple[str, str, str, UserRecord]:
        """Sign the person in: (session cookie, CSRF token, where to go next, person)."""
        from authlib.integrations.httpx_client import OAuthError

        self._require_enabled()
        if "error" in params:
            raise Unauthenticated(
                f"the identity provider refused the sign-in: {params['error']}"
                + (f" ({params['error_description'][:200]})" if params.get("error_description") else "")
            )
        flow = self._open_flow(sealed_flow)
        if params.get("state") != flow["state"]:
            raise Unauthenticated("the sign-in's state does not match: start the sign-in again")
        async with self._client() as client:
            metadata = await self._unavailable_is_503(self._discovered(client))
            try:
                token = await client.fetch_token(
                    metadata["token_endpoint"],
                    authorization_response=callback_url,
                    state=flow["state"],
                    code_verifier=flow["verifier"],
                )
            except OAuthError as exc:
                raise Unauthenticated(f"the identity provider refused the code: {exc.error}") from exc
            identity = await self._identity(client, token, flow["nonce"])
        user = await self._db.write(
            sso_sign_in,
            f"{metadata['issuer']} {identity.subject}",
            identity.email,
            identity.email_verified,
            identity.name,
            _granted(identity.roles),
            lambda u, verb: [user_audit_event(verb, u, None, ctx, {"via": "sso"})],
        )
        if user.locked:
            raise Unauthenticated("this account is locked: ask an admin to unlock it")
        cookie, csrf = await self._db.write(
            start_session,
            user.id,
            "sso",
            int(self._settings.session_hours * 3_600_000),
            [user_audit_event("sign_in", user, None, ctx, {"via": "sso", "issuer": metadata["issuer"]})],
        )
        return cookie, csrf, str(flow["after"]), user

    async def _identity(self, client: AsyncOAuth2Client, token: dict[str, Any], nonce: str) -> SsoIdentity:
        from authlib.oidc.core import CodeIDToken
        from joserfc.errors import JoseError

        if "id_token" not in token:
            raise Unauthenticated("the identity provider sent no ID token (is 'openid' in the scopes?)")
        metadata = await self._discovered(client)
        try:
            try:
                decoded = self._decode(token["id_token"])
            except JoseError:  # perhaps a new signing key: read the keys again, once
                metadata = await self._discovered(client, refresh=True)
                decoded = self._decode(token["id_token"])
            claims = CodeIDToken(
                decoded.claims,
                decoded.header,
                {
                    "iss": {"essential": True, "value": metadata["issuer"]},
                    "aud": {"essential": True, "value": self._settings.oidc_client_id},
                },
                {
                    "nonce": nonce,
                    "client_id": self._settings.oidc_client_id,
                    "access_token": token["access_token"],
                },
            )
            claims.validate(leeway=60)
        except JoseError as exc:
            raise Unauthenticated(f"the identity provider's ID token is not valid: {exc}") from exc
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise Forbidden("the identity provider sent no email address (is 'email' in the scopes?)")
        raw_roles = claims.get(self._settings.oidc_roles_claim)
        roles = tuple(str(r) for r in raw_roles) if isinstance(raw_roles, list) else None
        name = claims.get("name")
        return SsoIdentity(
            subject=str(claims["sub"]),
            email=email.lower(),
            email_verified=claims.get("email_verified") is True,
            name=name if isinstance(name, str) else None,
            roles=roles,
        )

    def _decode(self, id_token: str) -> Any:
        from joserfc import jwt
        from joserfc.jws import JWSRegistry

        assert self._keys is not None
        algorithms = (self._metadata or {}).get("id_token_signing_alg_values_supported") or ["RS256"]
        safe = [a for a in algorithms if a != "none" and not a.startswith("HS")] or ["RS256"]
        return jwt.decode(id_token, self._keys, registry=JWSRegistry(algorithms=safe))

    def _open_flow(self, sealed: bytes | None) -> dict[str, Any]:
        if not sealed:
            raise Unauthenticated("no sign-in in progress in this browser: start the sign-in again")
        try:
            flow = self._box.open(sealed)
        except Exception as exc:
            raise Unauthenticated("the sign-in's state is not readable: start the sign-in again") from exc
        if time.time() - float(flow.get("at", 0)) > FLOW_SECONDS:
            raise Unauthenticated("the sign-in took too long: start it again")
        return flow

    def _require_enabled(self) -> None:
        if not self.enabled:
            raise NotFound("single sign-on is not configured (AUDITRELAY_OIDC_ISSUER)")

    async def _unavailable_is_503(self, pending: Any) -> dict[str, Any]:
        from auditrelay.errors import RetryLater

        try:
            result: dict[str, Any] = await pending
        except Exception as exc:
            log.warning("the identity provider cannot be reached: %s", exc)
            raise RetryLater("the identity provider cannot be reached; try again shortly") from exc
        return result


def _granted(roles: tuple[str, ...] | None) -> tuple[bool, list[Membership]] | None:
    """The roles claim as (admin, memberships); None without a claim."""
    if roles is None:
        return None
    admin = "admin" in roles
    memberships: dict[str, str] = {}
    for role in roles:
        org, _, name = role.rpartition(":")
        if org and name in ("owner", "viewer") and memberships.get(org) != "owner":
            memberships[org] = name
    return admin, [Membership(org, role) for org, role in sorted(memberships.items())]
