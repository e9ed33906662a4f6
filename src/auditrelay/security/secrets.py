"""Secrets at rest: destination tokens, secret header values and URLs are Fernet-encrypted.

The key comes from `AUDITRELAY_SECRET_KEY` or, failing that, from `secret.key` in the data
directory (created with mode 0600 on first start). Processes sharing a PostgreSQL database
must share the key, so scale-out deployments set the variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

from auditrelay.errors import ConfigurationError


class SecretBox:
    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                "AUDITRELAY_SECRET_KEY must be 32 url-safe base64-encoded bytes (Fernet.generate_key())"
            ) from exc

    @classmethod
    def from_settings(cls, secret_key: str, data_dir: Path) -> SecretBox:
        if secret_key:
            return cls(secret_key.encode())
        key_file = data_dir / "secret.key"
        if not key_file.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
        return cls(key_file.read_bytes().strip())

    def seal(self, value: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(orjson.dumps(value))

    def open(self, sealed: bytes) -> dict[str, Any]:
        try:
            result: dict[str, Any] = orjson.loads(self._fernet.decrypt(sealed))
        except InvalidToken as exc:
            raise ConfigurationError(
                "cannot decrypt destination secrets: AUDITRELAY_SECRET_KEY is not the key that sealed them"
            ) from exc
        return result


def mask(value: str | None) -> str | None:
    """Show that a secret is set and its last characters, never the whole of it."""
    if value is None:
        return None
    if len(value) < 12:
        return "********"
    return "********" + value[-4:]
