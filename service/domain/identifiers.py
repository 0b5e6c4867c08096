"""Public identifiers: of orders, and the UUID form the APIs accept."""

from __future__ import annotations

import os
import re
import time

# A UUID as the documents write one (8-4-4-4-12 hex digits, either case): uuid.UUID alone
# would also take braces, a urn:uuid: prefix or no hyphens, which no client should send.
UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", re.ASCII
)
# How much of a refused identifier an error message repeats.
SHOWN_ID_LENGTH = 64

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


ORDER_ID_LENGTH = 8
# Every number below 62 * 62 as its two base62 digits, the lower one first.
_DIGIT_PAIRS = tuple(low + high for high in BASE62 for low in BASE62)


def new_order_id() -> str:
    """8 random base62 characters (62^8 ~ 2.2e14); a collision is caught by the primary key
    and the order is written again with a new id.

    One read of the OS's CSPRNG per id (secrets.choice reads it once per character, five
    times slower); 64 random bits reduced modulo 62^8 leave a bias below 1e-5.
    """
    value = int.from_bytes(os.urandom(8)) % 62**ORDER_ID_LENGTH
    # Two base62 digits at a time, least significant first as one at a time wrote them.
    chars = []
    for _ in range(ORDER_ID_LENGTH // 2):
        value, pair = divmod(value, 62 * 62)
        chars.append(_DIGIT_PAIRS[pair])
    return "".join(chars)


def shown_id(raw: str) -> str:
    """`raw` as an error message repeats it: a path segment can be kilobytes long."""
    return raw if len(raw) <= SHOWN_ID_LENGTH else raw[:SHOWN_ID_LENGTH] + "..."


def new_object_id() -> str:
    """24 hex characters in the shape Payway uses: a 4-byte timestamp and 8 random bytes."""
    return f"{int(time.time()) & 0xFFFFFFFF:08x}{os.urandom(8).hex()}"
