"""JSON Schema patterns from Python regexes: a case-insensitive one spelled out in both
cases accepts exactly what the original does, and what cannot be spelled out is refused."""

from __future__ import annotations

import itertools
import re

import pytest

from schemas.common import RFC3339_OPTIONAL_OFFSET
from schemas.me_order import LANGUAGE_TAG, PERIOD_ID_PATTERN
from service.openapi.patterns import anchored

# Both cases of letters inside and outside the samples' ranges, and the characters that
# are special in a class, so every string up to length 3 over it probes the edges.
ALPHABET = "aAcCdDfFgGxXzZ0-]^_ "
EVERY_SHORT_STRING = [
    "".join(chars) for n in range(4) for chars in itertools.product(ALPHABET, repeat=n)
]

SAMPLES = [
    r"[A-F]+",
    r"[a-c]x?",
    r"[^a-c]",
    r"[^A-C]{2,3}",
    r"[]a]",
    r"[^]a]",
    r"[]^]+",
    r"[\]^_]",
    r"[-a]|[a-]",
    r"[a-c-e]",
    r"[--0]z",
    r"[0-_]",
    r"[!-~]{1,2}",
    r"[a-dX-Z]{2}",
    r"\d[a-f\d]{2,3}",
    r"[\s\d]x",
    r"\w\W?",
    r"a\-\.\^[\^]",
    r"ab|CD|z-",
    r"(?:a|B)c*",
    r"(x|Z)\b.?",
    r"[a-z]{2,3}?[A-Z]",
]


@pytest.mark.parametrize("source", SAMPLES)
def test_both_cases_matches_what_ignorecase_does(source: str) -> None:
    original = re.compile(source, re.IGNORECASE | re.ASCII)
    spelled_out = re.compile(anchored(original))
    for text in EVERY_SHORT_STRING:
        expected = original.fullmatch(text) is not None
        assert (spelled_out.fullmatch(text) is not None) == expected, (source, text)


@pytest.mark.parametrize(
    ("pattern", "texts"),
    [
        (
            LANGUAGE_TAG,
            [
                *("en", "EN-us", "zh-Hant-TW", "de-CH-1996", "en-x-Private", "x-a", "en-", "e"),
                *("X-private", "i-Klingon", "i-", "x-"),
            ],
        ),
        (PERIOD_ID_PATTERN, ["aBcDeF0123456789abcdef01", "g" * 24, "A" * 23]),
        (RFC3339_OPTIONAL_OFFSET, ["2024-01-02t03:04:05z", "2024-01-02T03:04:05+01:00"]),
    ],
)
def test_schema_patterns_match_what_the_service_does(
    pattern: re.Pattern[str], texts: list[str]
) -> None:
    spelled_out = re.compile(anchored(pattern))
    for text in texts:
        assert (spelled_out.fullmatch(text) is None) == (pattern.fullmatch(text) is None), text


def test_ranges_gain_their_other_case() -> None:
    assert anchored(re.compile(r"[a-f][A-F]", re.IGNORECASE)) == "^(?:[a-fA-F][A-Fa-f])$"


def test_a_leading_bracket_stays_a_literal() -> None:
    assert anchored(re.compile(r"[]a][^]]", re.IGNORECASE)) == r"^(?:[\]aA][^\]])$"


def test_a_case_sensitive_pattern_is_only_anchored() -> None:
    assert anchored(re.compile(r"(?P<x>[A-z])\1")) == r"^(?:(?P<x>[A-z])\1)$"


@pytest.mark.parametrize(
    "source",
    [
        r"[A-z]",
        r"[Z-a]",
        r"[0-z]",
        r"[]-a]",
        r"[\--a]",
        r"(?i)a",
        r"(?<=a)b",
        r"(?=a)a",
        r"(?P<name>a)",
        r"(?#note)a",
        r"\x41",
        r"[\x41-\x5a]",
        r"\u0041",
        r"\U00000041",
        r"\N{LATIN SMALL LETTER A}",
        r"\101",
        r"(a)\1",
        r"\Aa",
        r"a\Z",
        "é",
        "[à-ÿ]",
    ],
)
def test_what_cannot_be_spelled_out_is_refused(source: str) -> None:
    with pytest.raises(ValueError, match="cannot"):
        anchored(re.compile(source, re.IGNORECASE))
