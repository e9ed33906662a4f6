from __future__ import annotations

import ipaddress

import pytest

from auditrelay.security import UnsafeUrl, check_destination_url, is_internal_address


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


@pytest.mark.parametrize(
    "address",
    [
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a01:203::1",  # 6to4 of 10.1.2.3
        "2002:a9fe:a9fe::",  # 6to4 of the metadata address 169.254.169.254
        "2002:c0a8:101:1::1",  # 6to4 of 192.168.1.1
        "2002:6440:1::",  # 6to4 of 100.64.0.1 (shared address space)
        "fec0::1",  # site-local
        "feff:ffff::1",  # site-local, the end of fec0::/10
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b:1::808:808",  # NAT64's local-use prefix
        "::ffff:a00:1",  # IPv4-mapped 10.0.0.1
        "::ffff:6440:1",  # IPv4-mapped 100.64.0.1
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "::8.8.8.8",  # IPv4-compatible, even of a public address: reserved
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    ],
)
def test_ipv6_forms_of_internal_addresses_are_refused(address: str) -> None:
    assert is_internal_address(ipaddress.ip_address(address)), address
    with pytest.raises(UnsafeUrl, match="AUDITRELAY_ALLOW_PRIVATE_DESTINATIONS"):
        check_destination_url(f"http://[{address}]/x", allow_private=False)


@pytest.mark.parametrize(
    "address", ["2002:808:808::", "2002:808:808:1::2", "64:ff9b::808:808", "::ffff:8.8.8.8"]
)
def test_ipv6_forms_of_public_addresses_are_judged_by_the_ipv4_they_embed(address: str) -> None:
    assert not is_internal_address(ipaddress.ip_address(address))
    check_destination_url(f"http://[{address}]/x", allow_private=False)
