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


DOCUMENTED_EXCHANGE = "orders"


@cache
def asyncapi_for_exchange(exchange: str) -> bytes:
    """The document as an instance serves it: naming the exchange it publishes to
    (EVENTS_EXCHANGE), where the stored file names the default, `orders`. A team reading
    a staging instance's document must not bind to an exchange that instance never uses."""
    if exchange == DOCUMENTED_EXCHANGE:
        return asyncapi_bytes()
    document = asyncapi_document()
    named = f"exchange `{DOCUMENTED_EXCHANGE}`"
    instead = f"exchange `{exchange}`"
    document["info"]["description"] = document["info"]["description"].replace(named, instead)
    channel = document["channels"]["orderCreated"]
    channel["description"] = channel["description"].replace(named, instead)
    channel["bindings"]["amqp"]["exchange"]["name"] = exchange
    return orjson.dumps(document)


def component_schema(name: str, *, strict: bool = False) -> dict[str, Any]:
    """A JSON Schema (draft 7, as AsyncAPI schemas are) for components/schemas/<name>,
    with the document's components alongside so its internal $refs resolve.

    The published schemas let objects carry keys they do not list, since a new minor
    schemaVersion may add optional fields and consumers must ignore what they do not
    know. `strict` forbids unlisted keys everywhere: what the service's own tests check
    its events against, so that every key it sends is documented.
    """
    document = asyncapi_document()
    if name not in document["components"]["schemas"]:
        raise KeyError(f"no schema {name!r} in {ASYNCAPI_PATH}")
    components = document["components"]
    if strict:
        # Only the schemas: elsewhere (messages, examples) `properties` is not a keyword.
        _forbid_unlisted_keys(components["schemas"])
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$ref": f"#/components/schemas/{name}",
        "components": components,
    }


def _forbid_unlisted_keys(schema: Any) -> None:
    """Sets `additionalProperties: false` on every object schema that lists its
    properties and says nothing else about extra keys."""
    if isinstance(schema, list):
        for item in schema:
            _forbid_unlisted_keys(item)
        return
    if not isinstance(schema, dict):
        return
    if isinstance(schema.get("properties"), dict):
        schema.setdefault("additionalProperties", False)
        for child in schema["properties"].values():
            _forbid_unlisted_keys(child)
    for key, child in schema.items():
        if key != "properties":
            _forbid_unlisted_keys(child)
