"""The event contract: the AsyncAPI 3 document in events/asyncapi.json."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson

ASYNCAPI_PATH = Path(__file__).resolve().parent / "asyncapi.json"


@cache
def asyncapi_bytes() -> bytes:
    """The document as stored, read once."""
    return ASYNCAPI_PATH.read_bytes()


def asyncapi_document() -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(asyncapi_bytes())
    return document


def component_schema(name: str) -> dict[str, Any]:
    """A JSON Schema (draft 7, as AsyncAPI schemas are) for components/schemas/<name>,
    with the document's components alongside so its internal $refs resolve."""
    document = asyncapi_document()
    if name not in document["components"]["schemas"]:
        raise KeyError(f"no schema {name!r} in {ASYNCAPI_PATH}")
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$ref": f"#/components/schemas/{name}",
        "components": document["components"],
    }
