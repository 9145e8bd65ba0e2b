"""Cutting an IP address down before it is used for anything.

The seed promises that only the first three groups of an IPv4 address are used
(195.159.103.82 → 195.159.103.0, shown as 195.159.103.xx); IPv6 keeps its /48 routing prefix.
Everything that is public (the statistics beacon, the banner and its consent posts) reads the client
address through :func:`truncate_ip` before it reaches storage, a log line or a queue.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

IPV4_PREFIX = 24
IPV6_PREFIX = 48
UNKNOWN = "0.0.0.0"  # noqa: S104 - a placeholder, never bound


@lru_cache(maxsize=4096)
def truncate_ip(ip: str) -> str:
    """The network part of ``ip``: IPv4 to /24, IPv6 to /48 (IPv4-mapped IPv6 as IPv4).

    Anything that is not an address (a hostname, an empty value, ``testclient``) becomes
    ``0.0.0.0`` so that a malformed value can never be stored as it came.
    """
    try:
        addr = ipaddress.ip_address(ip.strip().split("%", 1)[0])
    except ValueError:
        return UNKNOWN
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    prefix = IPV4_PREFIX if addr.version == 4 else IPV6_PREFIX
    network = ipaddress.ip_network(f"{addr}/{prefix}", strict=False)
    return str(network.network_address)


def display_ip(truncated: str) -> str:
    """How a truncated IPv4 address is shown to people: ``195.159.103.xx``."""
    if "." in truncated and truncated.endswith(".0"):
        return truncated[:-2] + ".xx"
    return truncated
