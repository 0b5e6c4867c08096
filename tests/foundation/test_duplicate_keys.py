"""The quick answer for a body without duplicate keys never lets one through: whenever
has_no_duplicate_keys says so, the full scan finds none."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from bench import corpus
from service.duplicate_keys import first_duplicate_key, has_no_duplicate_keys

KEYS = ["a", "b", "a:b", ":", "é:ü", "ключ", "x y"]
STRINGS = ["", "v", ":", "a:b:c", "::", "日本:語", '{"a":1}', "[1,:]", "👩‍👩‍👧"]


def document(rng: random.Random, depth: int = 0) -> str:
    """JSON text with keys repeated now and then, colons in keys and values."""
    roll = rng.random()
    if depth < 4 and roll < 0.35:
        pairs = [
            f"{orjson.dumps(rng.choice(KEYS)).decode()}{rng.choice(['', ' '])}:"
            f"{rng.choice(['', ' '])}{document(rng, depth + 1)}"
            for _ in range(rng.randint(0, 4))
        ]
        return "{" + ",".join(pairs) + "}"
    if depth < 4 and roll < 0.5:
        return "[" + ",".join(document(rng, depth + 1) for _ in range(rng.randint(0, 3))) + "]"
    return orjson.dumps(rng.choice([*STRINGS, 1, 2.5, True, None])).decode()


def test_a_quick_yes_is_never_wrong_and_the_common_body_gets_one() -> None:
    rng = random.Random(8)
    yes = duplicates = 0
    for _ in range(20_000):
        text = document(rng)
        value = orjson.loads(text)
        duplicate = first_duplicate_key(text)
        duplicates += duplicate is not None
        if has_no_duplicate_keys(text.encode(), value):
            yes += 1
            assert duplicate is None, text
    assert duplicates > 1000 and yes > 5000


@pytest.mark.parametrize(
    "text",
    [
        '{"a":"x:y","a":"z"}',  # the dropped value held a colon
        '{"a":1,"a":{"b":"c"}}',
        '{"a":{"b":1,"b":2}}',
        '{"a:b":1,"a:b":1}',
        '[{"k":1},{"k":1,"k":2}]',
    ],
)
def test_a_duplicate_never_gets_the_quick_yes(text: str) -> None:
    assert first_duplicate_key(text) is not None
    assert not has_no_duplicate_keys(text.encode(), orjson.loads(text))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"a\\u003a":1}', "an escape"),
        ('{"a":"\\"b\\":1"}', "an escape"),
        ("[" * 150 + "]" * 150, "nesting deeper than the quick walk goes"),
    ],
)
def test_what_the_quick_answer_cannot_settle_goes_to_the_full_scan(text: str, why: str) -> None:
    assert not has_no_duplicate_keys(text.encode(), orjson.loads(text)), why


@pytest.mark.parametrize(
    "body",
    [
        corpus.initials_request(1, "dup").body,
        corpus.oneclick_request(1, "dup").body,
        corpus.me_order_request(1, "dup", ["token"]).body,
    ],
)
def test_the_benchmark_s_orders_get_the_quick_yes(body: bytes) -> None:
    value: Any = orjson.loads(body)
    assert has_no_duplicate_keys(body, value)
