"""Roles and principals, secrets at rest, and the destination URL guard (no storage here)."""

from auditrelay.security.principals import TOKEN_PREFIX, Principal, Role, digest, new_token, shown_prefix
from auditrelay.security.secrets import SecretBox, mask
from auditrelay.security.url_guard import INTERNAL_HINT, UnsafeUrl, check_destination_url, is_internal_address

__all__ = [
    "INTERNAL_HINT",
    "TOKEN_PREFIX",
    "Principal",
    "Role",
    "SecretBox",
    "UnsafeUrl",
    "check_destination_url",
    "digest",
    "is_internal_address",
    "mask",
    "new_token",
    "shown_prefix",
]
