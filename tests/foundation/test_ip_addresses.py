"""The buyer's IP address has one spelling in the order row, the API and the event: the
one PostgreSQL's inet prints."""

from __future__ import annotations

import ipaddress
import random

import asyncpg
import pytest

from service.domain.ip_addresses import canonical_ip, ip_text

ADDRESSES = [
    "192.0.2.1",
    "2001:0DB8::0002",
    "2001:db8:0:0:1:0:0:1",
    "2001:db8::1:0:0:1",
    "::1",
    "::",
    "::ffff:192.0.2.1",
    "::FFFF:C000:0201",
    "::ffff:0.0.0.0",
    "::192.0.2.1",
    "::0.0.1.0",
    "::ffff:0:192.0.2.1",
    "64:ff9b::192.0.2.1",
    "fe80::1",
    "0:0:0:0:0:1:0:0",
    "1:0:0:0:0:0:0:0",
]


@pytest.mark.parametrize("address", ADDRESSES)
async def test_an_address_is_spelt_as_postgresql_spells_it(
    db: asyncpg.Connection, address: str
) -> None:
    assert canonical_ip(address) == await db.fetchval("SELECT host($1::text::inet)", address)


def _slow_canonical(text: str) -> str | None:
    try:
        return ip_text(ipaddress.ip_address(text))
    except ValueError:
        return None


def _quick_or_none(text: str) -> str | None:
    try:
        return canonical_ip(text)
    except ValueError:
        return None


def test_the_quick_ipv4_answer_is_the_one_ipaddress_gives() -> None:
    rng = random.Random(4)
    parts = ["0", "1", "9", "10", "99", "100", "199", "200", "249", "250", "255", "256", "300",
             "00", "01", "010", "001", "0255", "-1", "", " 1", "1 ", "٣", "1e1"]  # fmt: skip
    for _ in range(20_000):
        text = ".".join(rng.choice(parts) for _ in range(rng.choice([3, 4, 4, 4, 5])))
        assert _quick_or_none(text) == _slow_canonical(text), text
