"""Numbers in the panel's query parameters and form actions: ASCII digits only."""

from __future__ import annotations

import pytest

from auditrelay.panel.web import whole_number


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("42", 42), ("", None), ("-1", None), ("1.5", None), ("²", None), ("٣", None), (" 1", None)],
)
def test_only_ascii_digits_are_a_number(text: str, expected: int | None) -> None:
    assert whole_number(text) == expected
