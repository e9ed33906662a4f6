"""Secrets at rest: destination tokens, secret header values and URLs are Fernet-encrypted.

Keys come from `AUDITRELAY_SECRET_KEY` or, failing that, from `secret.key` in the data
directory (created with mode 0600 on a first start, and only when the store holds no
sealed secret yet: a node that joins an existing store must be given its key). Processes
sharing a PostgreSQL database must share the keys, so scale-out deployments set the
variable.

Several keys may be given, separated by commas (or one per line in the file): the first
seals, every one opens. That is how a key is rotated across nodes without a moment when one
node cannot read what another wrote: add the new key second on every node, then put it
first on every node, run `auditrelay keys rotate` (which re-seals every secret with it),
and drop the old one.

Each key has a fingerprint (the first 12 hex digits of its SHA-256): stored beside what it
sealed and shown in messages, so an operator can tell which key is expected without any
key ever being shown.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

from auditrelay.errors import ConfigurationError

KEY_FILE = "secret.key"
KEY_RULE = "32 url-safe base64-encoded bytes, as `auditrelay keys generate` prints"


class SecretsUnreadable(ConfigurationError):
    """None of this process's keys opens a sealed value."""


def fingerprint(key: bytes) -> str:
    return hashlib.sha256(key.strip()).hexdigest()[:12]


def parse_keys(text: str) -> list[bytes]:
    """Keys separated by commas, spaces or lines; empty parts ignored."""
    return [part.encode() for part in text.replace(",", " ").split()]


class SecretBox:
    def __init__(self, keys: bytes | list[bytes]) -> None:
        given = [keys] if isinstance(keys, bytes) else list(keys)
        if not given:
            raise ConfigurationError(f"no secret key given; a key is {KEY_RULE}")
        self._fernets: list[tuple[str, Fernet]] = []
        for number, key in enumerate(given, start=1):
            try:
                self._fernets.append((fingerprint(key), Fernet(key.strip())))
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(
                    f"AUDITRELAY_SECRET_KEY: key {number} of {len(given)} is not valid; a key is {KEY_RULE}"
                ) from exc

    @classmethod
    def from_settings(cls, secret_key: str, data_dir: Path, may_generate: bool = False) -> SecretBox:
        """The keys of the setting, else of the key file. The file is created only when
        `may_generate` (the store holds nothing sealed yet: `cli.prepare` checks)."""
        if secret_key:
            return cls(parse_keys(secret_key))
        key_file = data_dir / KEY_FILE
        if not key_file.exists():
            if not may_generate:
                raise ConfigurationError(
                    f"no secret key: set AUDITRELAY_SECRET_KEY (or put it in {key_file}). This store "
                    "already holds secrets, so this node must use the key the others use"
                )
            data_dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process made it first: use that one
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(Fernet.generate_key() + b"\n")
        return cls(parse_keys(key_file.read_text()))

    @property
    def primary_id(self) -> str:
        """The fingerprint of the key that seals."""
        return self._fernets[0][0]

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(key_id for key_id, _ in self._fernets)

    def seal(self, value: dict[str, Any]) -> bytes:
        return self._fernets[0][1].encrypt(orjson.dumps(value))

    def open_with_id(self, sealed: bytes) -> tuple[dict[str, Any], str]:
        """The value, and the fingerprint of the key that opened it."""
        for key_id, fernet in self._fernets:
            try:
                result: dict[str, Any] = orjson.loads(fernet.decrypt(sealed))
            except InvalidToken:
                continue
            return result, key_id
        raise SecretsUnreadable(
            f"cannot open sealed secrets: none of this process's keys ({', '.join(self.key_ids)}) sealed them"
        )

    def open(self, sealed: bytes) -> dict[str, Any]:
        return self.open_with_id(sealed)[0]


def generate_key() -> str:
    return Fernet.generate_key().decode()


def mask(value: str | None) -> str | None:
    """Show that a secret is set and its last characters, never the whole of it."""
    if value is None:
        return None
    if len(value) < 12:
        return "********"
    return "********" + value[-4:]
