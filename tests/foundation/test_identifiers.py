"""Order ids: drawn two base62 digits at a time, the same id as one digit at a time."""

from __future__ import annotations

import random

import pytest

from service.domain import identifiers
from service.domain.identifiers import BASE62, ORDER_ID_LENGTH, new_order_id


def one_digit_at_a_time(random_bytes: bytes) -> str:
    value = int.from_bytes(random_bytes) % 62**ORDER_ID_LENGTH
    chars = []
    for _ in range(ORDER_ID_LENGTH):
        value, digit = divmod(value, 62)
        chars.append(BASE62[digit])
    return "".join(chars)


def test_an_order_id_is_the_one_drawn_one_digit_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    draws = [bytes(8), b"\xff" * 8, (62**8 - 1).to_bytes(8), (62**8).to_bytes(8)]
    rng = random.Random(7)
    draws += [rng.randbytes(8) for _ in range(20_000)]
    for random_bytes in draws:
        monkeypatch.setattr(identifiers.os, "urandom", lambda _n, b=random_bytes: b)
        assert new_order_id() == one_digit_at_a_time(random_bytes)


def test_an_order_id_is_eight_base62_characters() -> None:
    order_id = new_order_id()
    assert len(order_id) == ORDER_ID_LENGTH
    assert set(order_id) <= set(BASE62)
