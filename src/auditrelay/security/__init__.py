"""Tokens and roles, secrets at rest, and the destination URL guard."""

from auditrelay.security.secrets import SecretBox
from auditrelay.security.tokens import Principal, Role
from auditrelay.security.url_guard import check_destination_url

__all__ = ["Principal", "Role", "SecretBox", "check_destination_url"]
