"""The record the SDK makes of a request: the address as ``client_ip`` finds it, each time."""

from __future__ import annotations

import ipaddress
import time

from hypothesis import given
from hypothesis import strategies as st

from vern.audit.clientip import client_ip, parse_ip
from vern.sdk.client import _event_of

addresses = st.sampled_from(["192.0.2.7", "10.0.0.2", "10.0.0.3", "2001:db8::1", "::ffff:192.0.2.9",
                             "unknown", "", "198.51.100.4:8080", "[2001:db8::2]:443", "not an ip"])
chains = st.lists(addresses, max_size=4).map(", ".join)
proxies = st.sampled_from([(), (ipaddress.ip_network("10.0.0.0/8"),),
                           (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))])


@given(addresses, st.one_of(st.none(), chains), st.one_of(st.none(), chains), proxies,
       st.booleans())
def test_the_address_is_the_one_client_ip_finds(
    peer: str, xff: str | None, forwarded: str | None, trusted: tuple[ipaddress.IPv4Network, ...],
    upper: bool,
) -> None:
    headers = [(b"host", b"skole.example.com"), (b"user-agent", b"Firefox/130.0")]
    if xff is not None:
        headers.append((b"X-Forwarded-For" if upper else b"x-forwarded-for", xff.encode()))
    if forwarded is not None:
        headers.append((b"forwarded", ", ".join(f"for={a}" for a in forwarded.split(", ")).encode()))
    as_dict = {k.decode().lower(): v.decode() for k, v in headers}
    expected = client_ip(peer, as_dict, trusted) if peer else None
    if expected is not None and parse_ip(expected) is None:
        expected = None
    raw = (time.time(), "GET", "/elever/1", 200, 1.0, peer, headers, None, trusted, "http.request")
    for _ in range(2):  # made, then from the cache
        event = _event_of(raw)
        assert event.get("ip") == (expected or None)
        assert event["user_agent"] == "Firefox/130.0"
        assert len(event["id"]) == 32 and int(event["id"], 16) >= 0
