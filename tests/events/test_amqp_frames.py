"""events.amqp_frames gives pamqp's bytes exactly, for the relay's messages and for
properties its fast path leaves to pamqp."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import aiormq
import pytest
from aiormq.abc import ChannelFrame
from pamqp import commands as spec
from pamqp.header import ContentHeader

from events.amqp_frames import EncodedProperties, event_properties, publish_payload
from events.envelope import CONTENT_TYPE, order_created_event, stored_envelope_headers

FRAME_MAX = 131_064  # RabbitMQ's frame_max less the frame's 8 bytes


def pamqp_payload(
    channel: int, exchange: str, messages: list[tuple[str, bytes, spec.Basic.Properties]]
) -> bytes:
    """The bytes aiormq's basic_publish writes for each message: its frames, the body cut
    by aiormq's own Channel._split_body, marshalled by ChannelFrame.marshall (pamqp)."""
    splitter = SimpleNamespace(max_content_size=FRAME_MAX)
    out = b""
    for routing_key, body, properties in messages:
        frames: list[Any] = [
            spec.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=True),
            ContentHeader(properties=properties, body_size=len(body)),
            *aiormq.Channel._split_body(splitter, body),  # type: ignore[arg-type]
        ]
        out += ChannelFrame.marshall(channel_number=channel, frames=frames).payload
    return out


def relay_properties() -> spec.Basic.Properties:
    """Properties as the relay builds them from an outbox row."""
    created = datetime(2026, 12, 2, 10, 11, 12, 345678, tzinfo=UTC)
    row = order_created_event(
        source="https://orders.example/x",
        family="initials",
        order_id="ord_" + "a" * 26,
        created_at=created,
        order={"id": "ord_x", "buyer": {"name": "Åsa Öberg"}},
        metadata={"cart": "ünïcode ✓"},
    )
    attributes = {k: v for k, v in row["payload"].items() if k != "data"}
    return spec.Basic.Properties(
        content_type=CONTENT_TYPE,
        delivery_mode=2,
        message_id=row["event_id"],
        message_type=row["event_type"],
        app_id="order-service",
        timestamp=created,
        headers=dict(stored_envelope_headers(attributes)),
    )


ODD_PROPERTIES = {
    "relay": relay_properties(),
    "none": spec.Basic.Properties(),
    "empty headers": spec.Basic.Properties(message_id="m", headers={}),
    "empty string skipped": spec.Basic.Properties(message_id="m", content_type=""),
    "every short string": spec.Basic.Properties(
        content_type="text/plain",
        content_encoding="gzip",
        delivery_mode=1,
        priority=9,
        correlation_id="c" * 255,
        reply_to="amq.rabbitmq.reply-to",
        expiration="60000",
        message_id="møøse",
        message_type="t",
        user_id="guest",
        app_id="a",
    ),
    "naive timestamp": spec.Basic.Properties(message_id="m", timestamp=datetime(2026, 1, 2, 3)),
    "offset timestamp": spec.Basic.Properties(
        message_id="m", timestamp=datetime(2026, 1, 2, 3, tzinfo=timezone(timedelta(hours=-5)))
    ),
    "typed headers": spec.Basic.Properties(
        message_id="m",
        headers={
            "int": 7,
            "big": 2**40,
            "bool": True,
            "float": 1.5,
            "dec": Decimal("1.25"),
            "nested": {"b": "x", "a": [1, "two"]},
            "none": None,
        },
    ),
    "long header key": spec.Basic.Properties(message_id="m", headers={"k" * 200: "v"}),
}


@pytest.mark.parametrize("name", list(ODD_PROPERTIES))
def test_a_message_is_marshalled_as_pamqp_marshals_it(name: str) -> None:
    properties = ODD_PROPERTIES[name]
    messages = [("order.created", b'{"id": 1}', properties)]
    assert publish_payload(5, "orders", messages, FRAME_MAX) == pamqp_payload(5, "orders", messages)


@pytest.mark.parametrize("size", [0, 1, FRAME_MAX - 1, FRAME_MAX, FRAME_MAX + 1, 3 * FRAME_MAX + 7])
def test_bodies_are_cut_into_frames_as_pamqp_cuts_them(size: int) -> None:
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    messages = [
        ("a.b", body, relay_properties()),
        ("other.key", b"second", spec.Basic.Properties(message_id=uuid.uuid4().hex)),
    ]
    assert publish_payload(1, "ex", messages, FRAME_MAX) == pamqp_payload(1, "ex", messages)


@pytest.mark.parametrize(
    "properties",
    [
        spec.Basic.Properties(message_id="m" * 256),
        spec.Basic.Properties(message_id="m", priority=256),
        spec.Basic.Properties(message_id="m", headers={"k": object()}),  # type: ignore[dict-item]
    ],
    ids=["short string over 255 bytes", "octet over 255", "unencodable header"],
)
def test_what_amqp_cannot_carry_raises_pamqps_error(properties: spec.Basic.Properties) -> None:
    messages = [("k", b"x", properties)]
    with pytest.raises(Exception) as expected:
        pamqp_payload(1, "ex", messages)
    with pytest.raises(type(expected.value)):
        publish_payload(1, "ex", messages, FRAME_MAX)


def event_values(**changes: Any) -> dict[str, Any]:
    """event_properties' arguments for the relay's message, with `changes`."""
    relay = relay_properties()
    values = {
        "content_type": relay.content_type,
        "delivery_mode": relay.delivery_mode,
        "message_id": relay.message_id,
        "message_type": relay.message_type,
        "app_id": relay.app_id,
        "timestamp": relay.timestamp,
        "headers": relay.headers,
    }
    return values | changes


EVENT_VALUES = {
    "relay": event_values(),
    "non-ASCII id and headers": event_values(message_id="møøse", headers={"ce-x": "Åsa ✓"}),
    "naive timestamp": event_values(timestamp=datetime(2026, 1, 2, 3, 4, 5)),
    "offset timestamp": event_values(
        timestamp=datetime(2026, 1, 2, 3, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    ),
    "no headers": event_values(headers={}),
    "id of 255 bytes": event_values(message_id="m" * 255),
    "empty type (pamqp leaves it out)": event_values(message_type=""),
    "header value not a string": event_values(headers={"ce-n": 7, "ce-s": "x"}),
}


@pytest.mark.parametrize("name", list(EVENT_VALUES))
def test_event_properties_are_marshalled_as_pamqp_marshals_them(name: str) -> None:
    values = EVENT_VALUES[name]
    ours = [("order.created", b"{}", event_properties(**values))]
    theirs = [("order.created", b"{}", spec.Basic.Properties(**values))]
    assert publish_payload(2, "orders", ours, FRAME_MAX) == pamqp_payload(2, "orders", theirs)


def test_event_properties_are_encoded_once_unless_pamqp_must() -> None:
    values = event_values()
    encoded = event_properties(**values)
    assert isinstance(encoded, EncodedProperties)
    assert encoded.message_id == values["message_id"]
    assert isinstance(event_properties(**event_values(message_type="")), spec.Basic.Properties)


def test_an_event_amqp_cannot_carry_raises_pamqps_error() -> None:
    values = event_values(message_id="m" * 256)
    with pytest.raises(Exception) as expected:
        pamqp_payload(1, "ex", [("k", b"x", spec.Basic.Properties(**values))])
    with pytest.raises(type(expected.value)):
        publish_payload(1, "ex", [("k", b"x", event_properties(**values))], FRAME_MAX)
