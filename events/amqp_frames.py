"""The wire bytes of a batch of Basic.Publish messages, built for the relay's messages.

pamqp marshals any frame generically (per property a type lookup, per value an encoder
call, per frame an object); for the relay's batches that was three quarters of the
publishing CPU. The bytes here are the same as pamqp's, byte for byte (tests compare the
two over the relay's messages and odder ones):

- the Basic.Publish method frame depends only on the channel, exchange and routing key,
  so it is marshalled by pamqp once and reused;
- the content header's properties are encoded here when they are what the relay sends
  (short strings, octets, a timestamp, a header table of strings); anything else (another
  value type in the headers, a string too long) goes through pamqp, which also raises
  pamqp's error for what AMQP cannot carry;
- the relay's own properties (event_properties) go straight from its values to their bytes,
  without a Properties object and its walk over all fourteen properties.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

import pamqp.frame
from pamqp import commands as spec
from pamqp import constants

_FRAME_HEAD = struct.Struct(">BHI")
_HEADER_HEAD = struct.Struct(">HxxQ")
_FLAGS = struct.Struct(">H")
_LONG = struct.Struct(">I")
_TIMESTAMP = struct.Struct(">Q")
_FRAME_END = constants.FRAME_END_CHAR
_SHORT_MAX = 255
_TABLE_KEY_MAX = 128

# Basic.Properties in wire order: (attribute, flag bit, AMQP type).
_PROPERTIES = tuple(
    (name, spec.Basic.Properties.flags[name], spec.Basic.Properties.amqp_type(name))
    for name in spec.Basic.Properties.__slots__
)


class _NotPlain(Exception):
    """A property the fast path leaves to pamqp."""


class EncodedProperties(NamedTuple):
    """A message's Basic.Properties in wire form, sent as they are, and its message_id (by
    which a returned message is matched)."""

    message_id: str
    wire: bytes


Properties = spec.Basic.Properties | EncodedProperties

# The properties every event carries, in wire order.
_EVENT_FLAGS = _FLAGS.pack(
    sum(
        spec.Basic.Properties.flags[name]
        for name in (
            "content_type", "headers", "delivery_mode", "message_id", "timestamp",
            "message_type", "app_id",
        )
    )
)  # fmt: skip


def event_properties(
    *,
    content_type: str,
    delivery_mode: int,
    message_id: str,
    message_type: str,
    app_id: str,
    timestamp: datetime,
    headers: Mapping[str, str],
) -> Properties:
    """The properties of one event message, as pamqp would marshal
    Basic.Properties(content_type=..., headers=..., ...) with these values, at a fraction
    of its cost. Values this does not encode itself (an empty or over-long string, a header
    value that is not a string) come back as that Properties object, for pamqp."""
    try:
        if not (content_type and message_id and message_type and app_id):
            raise _NotPlain  # pamqp leaves an empty string out, with its flag
        if type(delivery_mode) is not int or not 0 <= delivery_mode <= _SHORT_MAX:
            raise _NotPlain
        wire = b"".join(
            (
                _EVENT_FLAGS,
                _short_string(content_type),
                _string_table(headers),
                bytes((delivery_mode,)),
                _short_string(message_id),
                _timestamp(timestamp),
                _short_string(message_type),
                _short_string(app_id),
            )
        )
    except _NotPlain:
        return spec.Basic.Properties(
            content_type=content_type,
            delivery_mode=delivery_mode,
            message_id=message_id,
            message_type=message_type,
            app_id=app_id,
            timestamp=timestamp,
            headers=dict(headers),
        )
    return EncodedProperties(message_id, wire)


def publish_payload(
    channel_number: int,
    exchange: str,
    messages: Iterable[tuple[str, bytes, Properties]],
    max_body_size: int,
) -> bytes:
    """Every frame of every message (routing key, body, properties), as pamqp would
    marshal Basic.Publish(exchange, routing_key, mandatory=True), its ContentHeader and
    its body frames of at most `max_body_size` bytes, on `channel_number`."""
    parts: list[bytes] = []
    for routing_key, body, properties in messages:
        parts.append(_publish_method_frame(channel_number, exchange, routing_key))
        header = _HEADER_HEAD.pack(spec.Basic.frame_id, len(body)) + _properties(properties)
        parts += (_FRAME_HEAD.pack(constants.FRAME_HEADER, channel_number, len(header)), header)
        parts.append(_FRAME_END)
        for start in range(0, len(body), max_body_size):
            chunk = body[start : start + max_body_size]
            parts += (_FRAME_HEAD.pack(constants.FRAME_BODY, channel_number, len(chunk)), chunk)
            parts.append(_FRAME_END)
    return b"".join(parts)


@lru_cache(maxsize=64)
def _publish_method_frame(channel_number: int, exchange: str, routing_key: str) -> bytes:
    # pamqp validates the exchange name here, once per name.
    method = spec.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=True)
    return pamqp.frame.marshal(method, channel_number)


def _properties(properties: Properties) -> bytes:
    if isinstance(properties, EncodedProperties):
        return properties.wire
    try:
        return _plain_properties(properties)
    except _NotPlain:
        return properties.marshal()


def _plain_properties(properties: spec.Basic.Properties) -> bytes:
    flags = 0
    parts = [b""]
    for name, flag, amqp_type in _PROPERTIES:
        value = getattr(properties, name)
        if value is None or value == "":
            continue
        flags |= flag
        if amqp_type == "shortstr":
            parts.append(_short_string(value))
        elif amqp_type == "octet" and type(value) is int and 0 <= value <= _SHORT_MAX:
            parts.append(bytes((value,)))
        elif amqp_type == "table":
            parts.append(_string_table(value))
        elif amqp_type == "timestamp":
            parts.append(_timestamp(value))
        else:
            raise _NotPlain
    # Basic.Properties has 14 flags: they always fit the first flag word.
    parts[0] = _FLAGS.pack(flags)
    return b"".join(parts)


def _timestamp(value: Any) -> bytes:
    if type(value) is not datetime:
        raise _NotPlain
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=UTC)
    return _TIMESTAMP.pack(int(value.timestamp()))


def _short_string(value: Any) -> bytes:
    if type(value) is not str:
        raise _NotPlain
    encoded = value.encode()
    if len(encoded) > _SHORT_MAX:
        raise _NotPlain
    return bytes((len(encoded),)) + encoded


def _string_table(table: Any) -> bytes:
    if type(table) is not dict:
        raise _NotPlain
    parts: list[bytes] = []
    for key, value in sorted(table.items()):
        if type(value) is not str:
            raise _NotPlain
        encoded = value.encode()
        parts += (_table_key(key), _LONG.pack(len(encoded)), encoded)
    content = b"".join(parts)
    return _LONG.pack(len(content)) + content


@lru_cache(maxsize=256)
def _table_key(key: Any) -> bytes:
    """A header table's key with its length in front and the long-string type after: the
    relay's messages carry the same few keys, so each is encoded once."""
    if type(key) is not str:
        raise _NotPlain
    encoded_key = key.encode()
    if len(encoded_key) > _TABLE_KEY_MAX:
        raise _NotPlain  # pamqp truncates it, with a warning
    return bytes((len(encoded_key),)) + encoded_key + b"S"
