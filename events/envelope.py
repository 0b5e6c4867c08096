"""The order-created event: a CloudEvents 1.0 envelope in structured JSON mode.

The `cloudevents` SDK validates the envelope (required attributes, `time` timezone-aware,
extension names: its fixed part once per source, what varies per order as the SDK would)
and maps its attributes to the `ce-` AMQP headers of the RabbitMQ protocol binding. The
outbox stores the structured-mode JSON envelope, so the relay sends exactly what the order
transaction committed.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.bindings import rabbitmq
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from events.order_data import isoformat_of

SPEC_VERSION = "1.0"
EVENT_TYPE = "com.order-service.order.created"
ROUTING_KEY = "order.created"
DATA_SCHEMA_VERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json"
DATA_CONTENT_TYPE = "application/json"

_JSON_FORMAT = JSONFormat()
_REQUIRED_ATTRIBUTES = frozenset(("specversion", "id", "source", "type"))
# In the binding datacontenttype is the AMQP content_type, not a header; data is the body.
_NOT_HEADERS = frozenset(("datacontenttype", "data"))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def order_created_event(
    *,
    source: str,
    family: str,
    order_id: str,
    created_at: datetime,
    order: dict[str, Any],
    metadata: dict[str, Any] | None,
) -> dict[str, Any]:
    """The outbox row for one new order: event id, type, routing key and the envelope.

    `order` is the order as consumers see it (ids, merchant, buyer or customer, items,
    currency, amounts, autocharge, request headers worth keeping); `metadata` is the
    merchant's metaData exactly as sent.

    The SDK validates the envelope's fixed attributes once per event source (building
    and validating a CloudEvent cost some 25 us, 2 % of an order's CPU); what varies per
    order (the id, subject and time) is checked here as the SDK checks it, and anything
    that would fail goes through the SDK, which raises its CloudEventValidationError.
    """
    event_source = _checked_source(source, family)
    event_id = new_event_id()
    data = {
        "schemaVersion": DATA_SCHEMA_VERSION,
        "family": family,
        "order": order,
        "metaData": metadata,
    }
    if not (order_id and isinstance(order_id, str) and _aware(created_at)):
        payload = structured_envelope(
            CloudEvent(
                attributes=_attributes(event_source, event_id, order_id, created_at), data=data
            )
        )
    else:
        payload = _attributes(event_source, event_id, order_id, _attribute_text(created_at))
        payload["data"] = data
    return {
        "event_id": event_id,
        "event_type": EVENT_TYPE,
        "routing_key": ROUTING_KEY,
        "payload": payload,
    }


def _attributes(source: str, event_id: str, subject: str, time: Any) -> dict[str, Any]:
    """The envelope's attributes; `time` a datetime for the SDK, its text for the outbox."""
    return {
        "specversion": SPEC_VERSION,
        "id": event_id,
        "source": source,
        "type": EVENT_TYPE,
        "subject": subject,
        "time": time,
        "datacontenttype": DATA_CONTENT_TYPE,
        # An extension attribute, so a consumer can pick a parser before reading data.
        "dataschemaversion": DATA_SCHEMA_VERSION,
    }


@functools.cache
def _checked_source(source: str, family: str) -> str:
    """The event `source` of one family, with the envelope's fixed attributes validated
    by the SDK (a bad EVENT_SOURCE raises CloudEventValidationError at the first order).
    """
    event_source = f"{source}/{family}"
    CloudEvent(attributes=_attributes(event_source, new_event_id(), "x", _EPOCH), data=None)
    return event_source


def _aware(time: datetime) -> bool:
    return isinstance(time, datetime) and time.tzinfo is not None


def new_event_id() -> str:
    """A random (version 4) UUID as text, as str(uuid.uuid4()) gives it, at a third of its
    cost: the version and variant bits are set in the text instead of through UUID()."""
    h = os.urandom(16).hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


def structured_envelope(event: CloudEvent) -> dict[str, Any]:
    """The event as the structured-mode JSON object, ready for a jsonb column.

    The SDK's JSONFormat.write gives the same object as bytes through the standard json
    module; the outbox wants the object itself (asyncpg encodes it with orjson, which also
    takes the UUIDs and datetimes an order may carry).
    """
    envelope = {name: _attribute_text(value) for name, value in event.get_attributes().items()}
    envelope["data"] = event.get_data()
    return envelope


def amqp_headers(attributes: Mapping[str, Any]) -> dict[str, str]:
    """The `ce-` headers for an envelope's attributes, as the SDK's RabbitMQ binding maps
    them (`ce-id`, `ce-type`, `ce-source`, `ce-specversion`, `ce-subject`, `ce-time`, ...).

    Raises cloudevents' CloudEventValidationError when the attributes are not a valid event.
    """
    values = {name: value for name, value in attributes.items() if name != "data"}
    time = values.get("time")
    if isinstance(time, str):
        values["time"] = datetime.fromisoformat(time)
    headers: dict[str, str] = rabbitmq.to_binary(CloudEvent(values), _JSON_FORMAT).headers
    return headers


def stored_envelope_headers(attributes: Mapping[str, Any]) -> dict[str, str]:
    """amqp_headers() for an envelope from the outbox, which the SDK validated when the
    order was written: the same mapping as the binding's to_binary (attributes other than
    datacontenttype, `ce-` prefixed, as strings) without building the event again, which
    the relay would otherwise do for every message. Only the required attributes are
    checked; tests/events/test_envelope.py checks both functions agree."""
    missing = _REQUIRED_ATTRIBUTES.difference(attributes)
    if missing:
        raise ValueError(f"envelope lacks required attributes {sorted(missing)}")
    return {
        rabbitmq.CE_PREFIX + name: value if isinstance(value, str) else str(value)
        for name, value in attributes.items()
        if value is not None and name not in _NOT_HEADERS
    }


def parse_envelope(body: bytes) -> CloudEvent:
    """A received message body read back as a validated CloudEvent (structured mode)."""
    message = rabbitmq.RabbitMQMessage(headers={}, content_type=CONTENT_TYPE, body=body)
    event: CloudEvent = rabbitmq.from_structured_event(message, _JSON_FORMAT)
    return event


def _attribute_text(value: Any) -> Any:
    if isinstance(value, datetime):
        # The order's data formatted the same created_at a moment ago.
        text = isoformat_of(value)
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    return value
