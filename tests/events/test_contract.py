"""The AsyncAPI document: served by the app, internally consistent, and real published
events (body and headers) validate against its schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest

from events.contract import asyncapi_document, component_schema
from events.envelope import EVENT_TYPE, ROUTING_KEY, order_created_event
from events.order_data import OrderAmounts, OrderItem, RequestOrigin, order_event_data
from service.config import Config
from tests.events.conftest import EventConsumer, MerchantRef, PlaceOrders, StartRelay
from tests.events.test_relay import METADATA


def validator(name: str) -> jsonschema.Draft7Validator:
    schema = component_schema(name, strict=True)
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())


async def test_document_is_served_at_asyncapi_json_naming_the_instances_exchange(
    client: Any, config: Config
) -> None:
    response = await client.get("/asyncapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    document = await response.json()
    assert document["asyncapi"].startswith("3.")
    channel = document["channels"]["orderCreated"]
    assert channel["address"] == ROUTING_KEY
    # The stored file names the default exchange; an instance names its EVENTS_EXCHANGE.
    assert config.events_exchange != "orders"
    assert channel["bindings"]["amqp"]["exchange"] == {
        "name": config.events_exchange,
        "type": "topic",
        "durable": True,
        "autoDelete": False,
        "vhost": "/",
    }
    named = f"exchange `{config.events_exchange}`"
    assert named in channel["description"]
    assert named in document["info"]["description"]
    assert "`orders`" not in channel["description"] + document["info"]["description"]
    stored = asyncapi_document()
    assert stored["channels"]["orderCreated"]["bindings"]["amqp"]["exchange"]["name"] == "orders"
    assert document["components"] == stored["components"]
    assert document["operations"] == stored["operations"]
    message = document["components"]["messages"]["orderCreated"]
    assert message["contentType"] == "application/cloudevents+json"
    assert message["bindings"]["amqp"]["messageType"] == EVENT_TYPE


def test_the_documents_own_example_is_valid() -> None:
    [example] = asyncapi_document()["components"]["messages"]["orderCreated"]["examples"]
    validator("OrderCreatedEnvelope").validate(example["payload"])
    validator("CloudEventsHeaders").validate(example["headers"])


def test_the_schema_refuses_an_envelope_that_breaks_the_contract() -> None:
    [example] = asyncapi_document()["components"]["messages"]["orderCreated"]["examples"]
    broken = dict(example["payload"], type="order.created")
    with pytest.raises(jsonschema.ValidationError):
        validator("OrderCreatedEnvelope").validate(broken)
    no_metadata = dict(example["payload"], data={**example["payload"]["data"]})
    del no_metadata["data"]["metaData"]
    with pytest.raises(jsonschema.ValidationError):
        validator("OrderCreatedEnvelope").validate(no_metadata)


def test_a_consumer_validating_against_the_published_schema_accepts_a_new_optional_field() -> None:
    # A minor schemaVersion may add optional fields; consumers must ignore what they do not
    # know, so the published schemas must not refuse them. The service's own events are
    # checked strictly: every key it sends is documented.
    [example] = asyncapi_document()["components"]["messages"]["orderCreated"]["examples"]
    payload = example["payload"]
    newer = {
        **payload,
        "data": {
            **payload["data"],
            "schemaVersion": "1.1",
            "order": {**payload["data"]["order"], "giftMessage": "Happy birthday"},
        },
    }
    published = jsonschema.Draft7Validator(
        component_schema("OrderCreatedEnvelope"), format_checker=jsonschema.FormatChecker()
    )
    published.validate(newer)
    with pytest.raises(jsonschema.ValidationError, match="giftMessage"):
        validator("OrderCreatedEnvelope").validate(newer)


def test_a_new_envelope_is_valid(config: Config) -> None:
    event = order_created_event(
        source=config.event_source,
        family="oneclick",
        order_id="Zz9aB8cD",
        created_at=datetime.now(UTC),
        order=order_event_data(
            order_id="Zz9aB8cD",
            family="oneclick",
            merchant=MerchantRef(1, "eyezy"),
            currency="EUR",
            amounts=OrderAmounts.undiscounted(100),
            items=[OrderItem(0, "purchase", "report_pdf", "PDF report", 100)],
            request=RequestOrigin("2001:db8::1"),
            created_at=datetime.now(UTC),
        ),
        metadata=None,
    )
    validator("OrderCreatedEnvelope").validate(event["payload"])


async def test_published_events_validate_against_the_document(
    placer: PlaceOrders, consumer: EventConsumer, start_relay: StartRelay
) -> None:
    await start_relay()
    orders = await placer(3, metadata=METADATA)
    received = await consumer.wait_for([o.event_id for o in orders])
    envelope_validator = validator("OrderCreatedEnvelope")
    headers_validator = validator("CloudEventsHeaders")
    for got in received:
        envelope_validator.validate(got.envelope)
        headers_validator.validate(got.headers)
