"""One spelling per IP address: the buyer's address is in the order row (PostgreSQL inet),
the API's answer and the order-created event, and a consumer matching them by text must
find the same string in each."""

from __future__ import annotations

import ipaddress
import re
import struct

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# A dotted IPv4 address as ip_text writes it (0 to 255, no leading zero): its own spelling.
_IPV4_TEXT = re.compile(
    r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)", re.ASCII
)


def ip_text(address: IpAddress) -> str:
    """`address` as PostgreSQL's inet prints it. That is Python's compressed form, except
    for an IPv6 address that embeds an IPv4 one (IPv4-mapped ::ffff:192.0.2.1, or
    IPv4-compatible ::192.0.2.1), whose last 32 bits PostgreSQL writes dotted."""
    if address.version == 6:
        words = struct.unpack("!8H", address.packed)
        mapped = words[:5] == (0,) * 5 and words[5] == 0xFFFF
        compatible = words[:6] == (0,) * 6 and words[6] != 0
        if mapped or compatible:
            embedded = ipaddress.IPv4Address(address.packed[12:])
            return f"::ffff:{embedded}" if mapped else f"::{embedded}"
    return str(address)


def canonical_ip(text: str) -> str:
    """The address `text` spells, as `ip_text` writes it; ValueError if it is none."""
    if _IPV4_TEXT.fullmatch(text):
        return text
    return ip_text(ipaddress.ip_address(text))
