"""The envelope builder and the ce- headers, without services."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.core.v1.event import CloudEvent

from events.envelope import (
    CONTENT_TYPE,
    EVENT_TYPE,
    ROUTING_KEY,
    amqp_headers,
    new_event_id,
    order_created_event,
    parse_envelope,
    stored_envelope_headers,
    structured_envelope,
)

CREATED_AT = datetime(2026, 11, 23, 13, 0, 0, 123456, tzinfo=UTC)


def build(**changes: object) -> dict[str, object]:
    arguments: dict[str, object] = {
        "source": "/order-service",
        "family": "oneclick",
        "order_id": "Ab3dE7gH",
        "created_at": CREATED_AT,
        "order": {"id": "Ab3dE7gH"},
        "metadata": {"k": "v"},
    }
    arguments.update(changes)
    return order_created_event(**arguments)  # type: ignore[arg-type]


def test_outbox_row_and_structured_envelope() -> None:
    event = build()
    assert event["event_type"] == EVENT_TYPE
    assert event["routing_key"] == ROUTING_KEY
    payload = event["payload"]
    assert isinstance(payload, dict)
    assert payload == {
        "specversion": "1.0",
        "id": event["event_id"],
        "source": "/order-service/oneclick",
        "type": EVENT_TYPE,
        "subject": "Ab3dE7gH",
        "time": "2026-11-23T13:00:00.123456Z",
        "datacontenttype": "application/json",
        "dataschemaversion": "1.0",
        "data": {
            "schemaVersion": "1.0",
            "family": "oneclick",
            "order": {"id": "Ab3dE7gH"},
            "metaData": {"k": "v"},
        },
    }
    assert uuid.UUID(str(event["event_id"])).version == 4
    assert build()["event_id"] != event["event_id"]


def test_headers_follow_the_rabbitmq_binding() -> None:
    payload = build()["payload"]
    assert isinstance(payload, dict)
    headers = amqp_headers(payload)
    assert headers == {
        "ce-specversion": "1.0",
        "ce-id": payload["id"],
        "ce-source": "/order-service/oneclick",
        "ce-type": EVENT_TYPE,
        "ce-subject": "Ab3dE7gH",
        "ce-time": "2026-11-23T13:00:00.123456Z",
        "ce-dataschemaversion": "1.0",
    }


def test_envelope_reads_back_with_the_sdk() -> None:
    payload = build()["payload"]
    event = parse_envelope(orjson.dumps(payload))
    assert event.get_id() == payload["id"]  # type: ignore[index]
    assert event.get_time() == CREATED_AT
    assert event.get_data() == payload["data"]  # type: ignore[index]
    assert CONTENT_TYPE == "application/cloudevents+json"


def test_offsets_other_than_utc_are_kept() -> None:
    local = CREATED_AT.astimezone(timezone(timedelta(hours=2)))
    payload = build(created_at=local)["payload"]
    assert payload["time"] == "2026-11-23T15:00:00.123456+02:00"  # type: ignore[index]


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(CloudEventValidationError):
        build(created_at=datetime(2026, 1, 1))


def test_headers_refuse_a_broken_envelope() -> None:
    with pytest.raises(CloudEventValidationError):
        amqp_headers({"specversion": "1.0", "id": "", "source": "/x", "type": "t"})


def test_the_relays_header_mapping_agrees_with_the_sdk() -> None:
    payload = build(metadata=None)["payload"]
    assert isinstance(payload, dict)
    # As the relay reads it from the outbox: JSON, `time` a string, no `data`.
    stored = {k: v for k, v in orjson.loads(orjson.dumps(payload)).items() if k != "data"}
    assert stored_envelope_headers(stored) == amqp_headers(payload)


def test_the_relays_header_mapping_refuses_an_envelope_without_an_id() -> None:
    with pytest.raises(ValueError, match="id"):
        stored_envelope_headers({"specversion": "1.0", "source": "/x", "type": "t"})


def test_event_ids_are_random_uuids_in_their_canonical_text() -> None:
    ids = [new_event_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
    # Every variant digit turns up: the two bits are set, the other two stay random.
    assert {text[19] for text in ids} == set("89ab")


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"family": "me_order", "order_id": "4f1c2a9b8e7d6c5b4a392817"},
        {"created_at": CREATED_AT.replace(microsecond=0)},
        {"created_at": CREATED_AT.astimezone(timezone(timedelta(hours=-5, minutes=-30)))},
        {"source": "https://orders.example.com/eu", "metadata": None},
    ],
)
def test_the_envelope_is_the_one_the_sdk_builds(changes: dict[str, object]) -> None:
    event = build(**changes)
    payload = event["payload"]
    assert isinstance(payload, dict)
    attributes = {k: v for k, v in payload.items() if k != "data"}
    attributes["time"] = datetime.fromisoformat(str(attributes["time"]))
    assert structured_envelope(CloudEvent(attributes, payload["data"])) == payload


def test_an_empty_subject_is_refused() -> None:
    with pytest.raises(CloudEventValidationError):
        build(order_id="")
