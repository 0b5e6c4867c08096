"""The buyer's IP address has one spelling in the order row, the API and the event: the
one PostgreSQL's inet prints."""

from __future__ import annotations

import asyncpg
import pytest

from service.domain.ip_addresses import canonical_ip

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
