"""Public identifiers of orders."""

from __future__ import annotations

import os
import secrets
import time

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_order_id() -> str:
    """8 random base62 characters (62^8 ~ 2.2e14); a collision is caught by the primary key
    and the order is written again with a new id."""
    return "".join(secrets.choice(BASE62) for _ in range(8))


def new_object_id() -> str:
    """24 hex characters in the shape Payway uses: a 4-byte timestamp and 8 random bytes."""
    return f"{int(time.time()) & 0xFFFFFFFF:08x}{os.urandom(8).hex()}"
