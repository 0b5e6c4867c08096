"""Fields and helpers shared by the schemas of every endpoint family."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from marshmallow import ValidationError, fields

from service.domain.identifiers import shown_id
from service.domain.money import is_currency

# RFC 3339 date-time with a UTC offset (or Z), ASCII digits only; the groups are the day,
# the time, the fraction and the offset.
_DATE_TIME = r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?"
_OFFSET = r"([Zz]|[+-]\d{2}:\d{2})"
RFC3339 = re.compile(_DATE_TIME + _OFFSET, re.ASCII)
# The same with the offset left out allowed (the offset group is then None).
RFC3339_OPTIONAL_OFFSET = re.compile(_DATE_TIME + _OFFSET + "?", re.ASCII)
METADATA_MAX_KEYS = 50
MAX_EXACT_FLOAT = 2.0**53
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_STRING_LENGTH = 500
NUL_MESSAGE = "must not contain NUL (U+0000) characters"


def parse_rfc3339(raw: str) -> datetime:
    """An RFC 3339 timestamp with an offset (or Z); ISO 8601's other forms, which
    datetime.fromisoformat also reads, are refused."""
    if RFC3339.fullmatch(raw) is None:
        raise ValueError("not an RFC 3339 date-time")
    moment = datetime.fromisoformat(raw.replace("z", "Z").replace("t", "T"))
    if moment.tzinfo is None:
        raise ValueError("has no UTC offset")
    return moment


def flatten_errors(
    messages: Any, prefix: str = "", *, dict_fields: bool = False
) -> dict[str, list[str]]:
    """marshmallow's nested error dict as {"products[0].productCode": ["..."]}.

    With `dict_fields` (schemas with marshmallow Dict fields, i.e. the catalog's), an error
    under "key" or "value" belongs to the entry itself. Request schemas have no Dict field,
    so there "key" and "value" are names the caller sent, kept in the path.
    """
    flat: dict[str, list[str]] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key == "_schema":
                    child = path
                elif isinstance(key, int):
                    child = f"{path}[{key}]"
                elif dict_fields and key in ("key", "value") and isinstance(value, list) and path:
                    child = path
                elif key == "":
                    child = f'{path}[""]'
                else:
                    # A name the caller sent is repeated in the answer: kept short.
                    name = shown_id(str(key))
                    child = f"{path}.{name}" if path else name
                walk(value, child)
        elif isinstance(node, list | tuple):
            for item in node:
                if isinstance(item, Mapping | list | tuple):
                    walk(item, path)
                else:
                    flat.setdefault(path or "_body", []).append(str(item))
        else:
            flat.setdefault(path or "_body", []).append(str(node))

    walk(messages, prefix)
    return flat


def first_error(messages: Any) -> tuple[str, str]:
    """The first (path, message) of a marshmallow error, for one-error formats."""
    flat = flatten_errors(messages)
    path, texts = next(iter(flat.items()))
    return path, texts[0]


class CurrencyCode(fields.String):
    """An ISO 4217 alphabetic code such as USD, EUR or JPY."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        code = super()._deserialize(value, attr, data, **kwargs)
        if not is_currency(code):
            raise ValidationError("must be an ISO 4217 alphabetic currency code, e.g. USD")
        return code


class StrictBoolean(fields.Boolean):
    """Only JSON true/false; marshmallow's default also takes "yes", 1 and the like."""

    truthy = {True}
    falsy = {False}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("must be true or false")
        return value


class StrictInteger(fields.Integer):
    """Only JSON integers, not "15" or 15.0 or true."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise ValidationError("must be an integer")
        result: int = super()._deserialize(value, attr, data, **kwargs)
        return result


class StrictString(fields.String):
    """Only JSON strings, not numbers turned into text, and without NUL characters
    (PostgreSQL text and jsonb cannot hold U+0000)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError("must be a string")
        if "\x00" in value:
            raise ValidationError(NUL_MESSAGE)
        result: str = super()._deserialize(value, attr, data, **kwargs)
        return result


class MetaData(fields.Field[dict[str, Any]]):
    """The merchant's flat key-value object, carried unchanged into the order and its event:
    at most 50 keys of up to 40 characters; values string (up to 500), number, bool or null."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValidationError("must be an object of key-value pairs")
        problems: dict[str, list[str]] = {}
        if len(value) > METADATA_MAX_KEYS:
            raise ValidationError(f"at most {METADATA_MAX_KEYS} keys")
        for key, item in value.items():
            if not 1 <= len(key) <= METADATA_MAX_KEY_LENGTH:
                problems[key] = [f"keys are 1 to {METADATA_MAX_KEY_LENGTH} characters"]
            elif "\x00" in key or (isinstance(item, str) and "\x00" in item):
                problems[key] = [NUL_MESSAGE]
            elif isinstance(item, str):
                if len(item) > METADATA_MAX_STRING_LENGTH:
                    problems[key] = [f"strings are at most {METADATA_MAX_STRING_LENGTH} characters"]
            elif item is not None and not isinstance(item, bool | int | float):
                problems[key] = ["values are strings, numbers, booleans or null (no nesting)"]
            elif isinstance(item, float) and item.is_integer() and abs(item) > MAX_EXACT_FLOAT:
                # Integers past 64 bits arrive as floats and would not be carried unchanged;
                # integers up to 64 bits are kept exactly.
                problems[key] = [
                    "whole numbers are kept exactly only as integers of up to 64 bits; "
                    "send this one as a string"
                ]
        if problems:
            raise ValidationError(problems)
        return value

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value
