"""IP truncation: the seed's example, and properties over every address (Hypothesis)."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from vern.core.ip import display_ip, truncate_ip


def test_it_cuts_the_seed_example_to_three_groups() -> None:
    assert truncate_ip("195.159.103.82") == "195.159.103.0"
    assert display_ip(truncate_ip("195.159.103.82")) == "195.159.103.xx"


def test_it_keeps_the_ipv6_routing_prefix_only() -> None:
    assert truncate_ip("2001:db8:85a3:8d3:1319:8a2e:370:7348") == "2001:db8:85a3::"


def test_it_treats_an_ipv4_mapped_address_as_ipv4() -> None:
    assert truncate_ip("::ffff:195.159.103.82") == "195.159.103.0"


def test_it_never_passes_a_non_address_through() -> None:
    for junk in ("", "testclient", "not-an-ip", "1.2.3.4.5", "195.159.103.82:443"):
        assert truncate_ip(junk) == "0.0.0.0"  # noqa: S104


@given(st.ip_addresses(v=4))
def test_an_ipv4_address_keeps_exactly_its_slash_24(addr: ipaddress.IPv4Address) -> None:
    cut = ipaddress.IPv4Address(truncate_ip(str(addr)))
    assert int(cut) == int(addr) & 0xFFFFFF00
    assert addr in ipaddress.ip_network(f"{cut}/24")


@given(st.ip_addresses(v=6))
def test_an_ipv6_address_keeps_exactly_its_slash_48(addr: ipaddress.IPv6Address) -> None:
    if addr.ipv4_mapped is not None:
        return
    cut = ipaddress.IPv6Address(truncate_ip(str(addr)))
    assert int(cut) == int(addr) & ~((1 << 80) - 1)


@given(st.ip_addresses())
def test_truncation_is_idempotent_and_never_returns_the_full_host(
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    once = truncate_ip(str(addr))
    assert truncate_ip(once) == once
    host_bits = int(ipaddress.ip_address(once)) & (0xFF if "." in once else (1 << 80) - 1)
    assert host_bits == 0
