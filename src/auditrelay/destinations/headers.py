"""What may travel in an HTTP header: shared by destination settings and kinds' options."""

from __future__ import annotations

import re

#: What a header value may hold: visible ASCII, spaces and tabs (RFC 9110 field-vchar,
#: without obs-text, which receivers decode inconsistently).
HEADER_VALUE = re.compile(r"[\x20-\x7e\t]*")
#: A masked secret as the API shows it; sent back, it must not replace the real one.
MASKED = re.compile(r"\*{8}")


def check_header_text(value: str | None, what: str) -> str | None:
    """Refuse what cannot travel in an HTTP header: CR/LF (injection), NUL, non-ASCII."""
    if value is None:
        return None
    if any(ch in value for ch in "\r\n\x00"):
        raise ValueError(f"{what} must not contain CR, LF or NUL characters")
    if not HEADER_VALUE.fullmatch(value):
        raise ValueError(f"{what} must be printable ASCII (it travels in an HTTP header)")
    if MASKED.search(value):
        raise ValueError(
            f"{what} looks like a masked secret ('********'); send the real value, or omit it to keep it"
        )
    return value
