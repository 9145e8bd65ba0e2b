"""The client's address behind reverse proxies.

``X-Forwarded-For`` and ``Forwarded`` (RFC 7239) are believed only when the connection comes from
a configured proxy network (``VERN_TRUSTED_PROXIES``). The address list is then read from the
right - the hops nearest to us - skipping trusted proxies; the first address that is not a trusted
proxy is the client. Whatever a client writes at the left of the header (a spoofed address) is
never reached, because the first proxy appends the real peer to its right. ``Forwarded`` wins
over ``X-Forwarded-For`` when both are present.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_ip(value: str) -> IPAddress | None:
    """An address from a header element: bare, ``v4:port``, ``[v6]`` or ``[v6]:port``; quotes
    stripped; IPv4-mapped IPv6 becomes IPv4. None for anything else (``unknown``, ``_hidden``)."""
    text = value.strip().strip('"').strip()
    if not text:
        return None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    if "%" in text:
        return None
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    for key, val in headers.items():
        if key.lower() == name:
            return val
    return None


def forwarded_chain(headers: Mapping[str, str]) -> list[str] | None:
    """The ``for=`` values of ``Forwarded`` (left to right), else the ``X-Forwarded-For`` list;
    None when neither header is present."""
    forwarded = _header(headers, "forwarded")
    if forwarded is not None and forwarded.strip():
        chain = []
        for element in forwarded.split(","):
            found = ""
            for pair in element.split(";"):
                key, _, val = pair.partition("=")
                if key.strip().lower() == "for":
                    found = val
            chain.append(found)
        return chain
    xff = _header(headers, "x-forwarded-for")
    if xff is not None and xff.strip():
        return xff.split(",")
    return None


def _trusted(addr: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(addr.version == net.version and addr in net for net in trusted)


def client_ip(peer: str, headers: Mapping[str, str], trusted: Sequence[IPNetwork]) -> str:
    """The client's address (see module doc). ``peer`` is the address the connection came from."""
    peer_addr = parse_ip(peer)
    if peer_addr is None:
        return peer
    if not trusted or not _trusted(peer_addr, trusted):
        return str(peer_addr)
    chain = forwarded_chain(headers)
    if not chain:
        return str(peer_addr)
    nearest = peer_addr
    for item in reversed(chain):
        addr = parse_ip(item)
        if addr is None:
            # A hop we cannot read: nothing left of it can be believed.
            return str(nearest)
        if not _trusted(addr, trusted):
            return str(addr)
        nearest = addr
    return str(nearest)
