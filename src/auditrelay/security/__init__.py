"""Roles and principals, secrets at rest, the destination URL guard, signing of deliveries
and checks of TLS material (no storage here)."""

from auditrelay.security.passwords import (
    hash_password,
    needs_rehash,
    password_problem,
    sign_in_wait_seconds,
    verify_password,
)
from auditrelay.security.pem import check_certificates, check_private_key, key_matches_certificate
from auditrelay.security.principals import (
    SESSION_COOKIE,
    TOKEN_PREFIX,
    Principal,
    Role,
    digest,
    new_session_secret,
    new_token,
    session_cookie_attributes,
    shown_prefix,
)
from auditrelay.security.redaction import redact, redact_bytes, secret_forms
from auditrelay.security.secrets import (
    SecretBox,
    SecretsUnreadable,
    fingerprint,
    generate_key,
    mask,
    parse_keys,
)
from auditrelay.security.signing import (
    GENERATE,
    new_message_id,
    new_signing_secret,
    signature_headers,
    signing_key,
)
from auditrelay.security.url_guard import INTERNAL_HINT, UnsafeUrl, check_destination_url, is_internal_address

__all__ = [
    "GENERATE",
    "INTERNAL_HINT",
    "SESSION_COOKIE",
    "TOKEN_PREFIX",
    "Principal",
    "Role",
    "SecretBox",
    "SecretsUnreadable",
    "UnsafeUrl",
    "check_certificates",
    "check_destination_url",
    "check_private_key",
    "digest",
    "fingerprint",
    "generate_key",
    "hash_password",
    "is_internal_address",
    "key_matches_certificate",
    "mask",
    "needs_rehash",
    "new_message_id",
    "new_session_secret",
    "new_signing_secret",
    "new_token",
    "parse_keys",
    "password_problem",
    "redact",
    "redact_bytes",
    "secret_forms",
    "session_cookie_attributes",
    "shown_prefix",
    "sign_in_wait_seconds",
    "signature_headers",
    "signing_key",
    "verify_password",
]
