"""Client address behind proxies: only configured proxies are believed, right-most untrusted wins."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from vern.core.clientip import client_ip, parse_ip

TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]

trusted_v4 = st.integers(0, 2**24 - 1).map(lambda n: str(ipaddress.IPv4Address((10 << 24) + n)))
trusted_v6 = st.integers(0, 2**120 - 1).map(lambda n: str(ipaddress.IPv6Address((0xFD << 120) + n)))
trusted_ip = st.one_of(trusted_v4, trusted_v6)


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _untrusted(a: Address) -> bool:
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        return False
    return not any(a.version == n.version and a in n for n in TRUSTED)


public_v4: st.SearchStrategy[Address] = st.ip_addresses(v=4).filter(_untrusted)
public_v6: st.SearchStrategy[Address] = st.ip_addresses(v=6).filter(_untrusted)
untrusted_ip = st.one_of(public_v4.map(str), public_v6.map(str))
junk = st.one_of(untrusted_ip, trusted_ip, st.sampled_from(["unknown", "_hidden", "", "x.y",
                                                            "999.1.1.1", '"[::1]:80"']))


@given(peer=untrusted_ip, spoofed=st.lists(junk, max_size=5))
def test_it_ignores_forwarding_headers_from_an_untrusted_peer(peer: str, spoofed: list[str]) -> None:
    headers = {"x-forwarded-for": ", ".join(spoofed), "forwarded": ", ".join(f"for={s}" for s in spoofed)}
    assert client_ip(peer, headers, TRUSTED) == str(ipaddress.ip_address(peer))


@given(client=untrusted_ip, proxies=st.lists(trusted_ip, min_size=1, max_size=4),
       spoofed=st.lists(junk, max_size=4))
def test_it_takes_the_right_most_untrusted_address_whatever_the_client_prepends(
    client: str, proxies: list[str], spoofed: list[str]
) -> None:
    # The client sends a spoofed header; each proxy appends the address it saw on its right.
    chain = [*spoofed, client, *proxies[:-1]]
    peer = proxies[-1]
    assert client_ip(peer, {"x-forwarded-for": ", ".join(chain)}, TRUSTED) == str(
        ipaddress.ip_address(client))


@given(client=untrusted_ip, proxies=st.lists(trusted_ip, min_size=1, max_size=4),
       spoofed=st.lists(untrusted_ip, max_size=3))
def test_forwarded_and_x_forwarded_for_give_the_same_answer(
    client: str, proxies: list[str], spoofed: list[str]
) -> None:
    chain = [*spoofed, client, *proxies[:-1]]
    quoted = [f'"[{a}]"' if ":" in a else a for a in chain]
    fwd = ", ".join(f"for={a};proto=https" for a in quoted)
    via_xff = client_ip(proxies[-1], {"X-Forwarded-For": ", ".join(chain)}, TRUSTED)
    via_fwd = client_ip(proxies[-1], {"Forwarded": fwd}, TRUSTED)
    assert via_xff == via_fwd == str(ipaddress.ip_address(client))


@settings(max_examples=200)
@given(peer=st.one_of(trusted_ip, untrusted_ip), chain=st.lists(junk, max_size=6))
def test_the_answer_is_always_the_peer_or_an_address_from_the_header(
    peer: str, chain: list[str]
) -> None:
    result = client_ip(peer, {"x-forwarded-for": ", ".join(chain)}, TRUSTED)
    candidates = {str(a) for a in (parse_ip(x) for x in [*chain, peer]) if a is not None}
    assert result in candidates
    ipaddress.ip_address(result)


def test_it_stops_at_a_hop_it_cannot_read() -> None:
    headers = {"x-forwarded-for": "198.51.100.7, unknown, 10.0.0.2"}
    assert client_ip("10.0.0.1", headers, TRUSTED) == "10.0.0.2"


def test_it_reads_ports_brackets_and_mapped_addresses() -> None:
    assert parse_ip("192.0.2.1:8080") == ipaddress.ip_address("192.0.2.1")
    assert parse_ip('"[2001:db8::1]:4711"') == ipaddress.ip_address("2001:db8::1")
    assert parse_ip("::ffff:192.0.2.9") == ipaddress.ip_address("192.0.2.9")
    assert parse_ip("unknown") is None


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_ip("10.0.0.1", {"x-forwarded-for": "203.0.113.9"}, []) == "10.0.0.1"
