"""Passwords of people: hashed with argon2id (`argon2-cffi`, the reference implementation's
binding), and how long a run of wrong ones makes the next attempt wait.

The hasher's parameters are argon2-cffi's defaults (RFC 9106's second recommended
option): a hash takes tens of milliseconds and 64 MiB, which is what makes a stolen hash
expensive to guess. Unknown addresses are checked against a dummy hash, so the time an
answer takes does not tell whether an address has an account.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

#: The shortest password accepted (NIST SP 800-63B asks for at least 8; people with the
#: keys to every audit stream get a little more).
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
#: Wrong passwords in a row that cost nothing; each further one doubles the wait, up to
#: `MAX_WAIT_SECONDS`.
FREE_ATTEMPTS = 5
MAX_WAIT_SECONDS = 900

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches; a missing hash (no such person, or one who signs in
    only with SSO) is checked against a dummy so it costs the same time and is False."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"must be at most {MAX_PASSWORD_LENGTH} characters"
    return None


def sign_in_wait_seconds(failed_in_a_row: int, last_failed_at_ms: int | None, now_ms: int) -> float:
    """How long before the next attempt is even checked: 0 for the first few wrong
    passwords, then 1, 2, 4 … seconds (at most 15 minutes) after the last one."""
    if failed_in_a_row < FREE_ATTEMPTS or last_failed_at_ms is None:
        return 0.0
    wait = min(MAX_WAIT_SECONDS, 2 ** (failed_in_a_row - FREE_ATTEMPTS))
    return max(0.0, (last_failed_at_ms + wait * 1000 - now_ms) / 1000)
