from __future__ import annotations

import pytest

from auditrelay.security import UnsafeUrl, check_destination_url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8088/x",
        "http://localhost/x",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:127.0.0.1]/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
    ],
)
def test_internal_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="AUDITRELAY_ALLOW_PRIVATE_DESTINATIONS"):
        check_destination_url(url, allow_private=False)
    check_destination_url(url, allow_private=True)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/", "https://"),
        ("https:///path", "no host"),
        ("https://u:p@example.com/", "credentials"),
        ("https://example.com:99999/", "not a valid URL"),
        ("https://exa mple.com/", "spaces"),
    ],
)
def test_malformed_urls_are_refused_even_when_private_is_allowed(url: str, reason: str) -> None:
    with pytest.raises(UnsafeUrl, match=reason):
        check_destination_url(url, allow_private=True)


def test_public_address_literal_is_accepted() -> None:
    check_destination_url("https://8.8.8.8/services/collector", allow_private=False)
