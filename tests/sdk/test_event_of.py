"""The record the SDK makes of a request: the address as ``client_ip`` finds it, each time, and
the JSON text it is written as holds exactly the request's values."""

from __future__ import annotations

import ipaddress
import json
import time
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from vern.core.clientip import client_ip, parse_ip
from vern.sdk.client import _body, _event_json, _id_of, outcome_of

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
        event = json.loads(_event_json(raw))
        assert event.get("ip") == (expected or None)
        assert event["user_agent"] == "Firefox/130.0"
        assert len(event["id"]) == 32 and int(event["id"], 16) >= 0


any_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF,
                                          exclude_categories=("Cs",)), max_size=30)


@given(any_text, any_text, st.one_of(st.none(), any_text), st.one_of(st.none(), any_text),
       st.one_of(st.none(), any_text), st.integers(min_value=100, max_value=599),
       st.floats(min_value=0, max_value=1e6, allow_nan=False), st.floats(min_value=0, max_value=4e9))
def test_the_record_is_json_with_the_requests_values(  # noqa: PLR0917 - one per value
    method: str, path: str, actor: str | None, ua: str | None, rid: str | None, status: int,
    ms: float, wall: float,
) -> None:
    headers = [(b"host", b"skole.example.com")]
    if ua is not None:
        headers.append((b"user-agent", ua.encode("latin-1", "replace")))
    if rid is not None:
        headers.append((b"X-Request-ID", rid.encode("latin-1", "replace")))
    raw = (wall, method, path, status, round(ms, 3), "192.0.2.7", headers, actor, (),
           "http.request")
    text = _event_json(raw)
    assert text.isascii()
    event = json.loads(text)
    expected = {
        "id": event["id"], "time": datetime.fromtimestamp(wall, UTC).isoformat(),
        "action": "http.request", "outcome": outcome_of(status), "resource": path[:200],
        "details": {"method": method, "status": status, "ms": round(ms, 3)}, "ip": "192.0.2.7",
    }
    if actor is not None:
        expected["actor"] = actor[:128]
    sent_ua = ua.encode("latin-1", "replace").decode("latin-1")[:512] if ua else None
    if sent_ua:
        expected["user_agent"] = sent_ua
    sent_rid = rid.encode("latin-1", "replace").decode("latin-1")[:64] if rid else None
    if sent_rid:
        expected["request_id"] = sent_rid
    assert event == expected
    body = json.loads(_body([text, {"id": "e1", "action": "x"}]))
    assert body == {"events": [expected, {"id": "e1", "action": "x"}]}
    assert _id_of(text) == event["id"] and _id_of({"id": "e1"}) == "e1"
