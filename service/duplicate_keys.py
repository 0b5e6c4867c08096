"""Finds a key given twice in one JSON object, which orjson (like most parsers) lets pass
with the last value winning. In a payment API that is a parser differential: a proxy, a
signature check or the merchant's own log may read the first value while the order is
written with the last. RFC 8259 leaves the meaning of such a body open; it is refused.

orjson cannot report duplicates, so a body it accepted is read once more by the
standard library's C scanner with a hook on every object (about 6 us for a typical
order body, against some 500 us of CPU per order)."""

from __future__ import annotations

import json
from typing import Any


class DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return result


# Built once: json.loads with a hook builds a decoder on every call.
_DECODER = json.JSONDecoder(object_pairs_hook=_object)


def first_duplicate_key(text: str) -> str | None:
    """The first key found twice in one object of `text`, a JSON document orjson already
    accepted; None if every object's keys are distinct."""
    try:
        _DECODER.decode(text)
    except DuplicateKey as exc:
        return exc.key
    return None
