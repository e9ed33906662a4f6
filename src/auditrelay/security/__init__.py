"""Roles and principals, secrets at rest, and the destination URL guard (no storage here)."""

from auditrelay.security.passwords import (
    hash_password,
    needs_rehash,
    password_problem,
    sign_in_wait_seconds,
    verify_password,
)
from auditrelay.security.principals import (
    TOKEN_PREFIX,
    Principal,
    Role,
    digest,
    new_session_secret,
    new_token,
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
from auditrelay.security.url_guard import INTERNAL_HINT, UnsafeUrl, check_destination_url, is_internal_address

__all__ = [
    "INTERNAL_HINT",
    "TOKEN_PREFIX",
    "Principal",
    "Role",
    "SecretBox",
    "SecretsUnreadable",
    "UnsafeUrl",
    "check_destination_url",
    "digest",
    "fingerprint",
    "generate_key",
    "hash_password",
    "is_internal_address",
    "mask",
    "needs_rehash",
    "new_session_secret",
    "new_token",
    "parse_keys",
    "password_problem",
    "redact",
    "redact_bytes",
    "secret_forms",
    "shown_prefix",
    "sign_in_wait_seconds",
    "verify_password",
]
