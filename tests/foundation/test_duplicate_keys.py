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
        ("[" * 300 + "]" * 300, "nesting deeper than orjson writes"),
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


def colons_walked(body: bytes, value: Any) -> bool:
    """The quick answer as it was first computed: a walk of `value` counting its keys and
    the colons inside its strings (to depth 100), against the colons of `body`."""
    if b"\\" in body or type(value) not in (dict, list):
        return False
    keys = in_strings = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > 100:
            return False
        children = node.values() if type(node) is dict else node
        if type(node) is dict:
            keys += len(node)
            in_strings += sum(key.count(":") for key in node)
        for item in children:
            if type(item) is str:
                in_strings += item.count(":")
            elif type(item) in (dict, list):
                stack.append((item, depth + 1))
    return body.count(b":") - in_strings == keys


def test_the_quick_answer_from_orjson_s_dump_is_the_walk_s() -> None:
    rng = random.Random(9)
    for _ in range(20_000):
        text = document(rng)
        body, value = text.encode(), orjson.loads(text)
        assert has_no_duplicate_keys(body, value) == colons_walked(body, value), text
    for depth in (99, 100, 101, 150, 254):
        body = ("[" * depth + "]" * depth).encode()
        # Past the walk's depth the full scan answered what the dump now answers at once.
        assert has_no_duplicate_keys(body, orjson.loads(body)) is (
            colons_walked(body, orjson.loads(body)) or depth > 100
        )
        assert first_duplicate_key(body.decode()) is None
