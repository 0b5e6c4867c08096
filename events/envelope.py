"""The order-created event: a CloudEvents 1.0 envelope in structured JSON mode."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

SPEC_VERSION = "1.0"
EVENT_TYPE = "com.order-service.order.created"
ROUTING_KEY = "order.created"
DATA_SCHEMA_VERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json"


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
    """
    event_id = str(uuid.uuid4())
    envelope = {
        "specversion": SPEC_VERSION,
        "id": event_id,
        "source": f"{source}/{family}",
        "type": EVENT_TYPE,
        "subject": order_id,
        "time": created_at.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "dataschemaversion": DATA_SCHEMA_VERSION,
        "data": {
            "schemaVersion": DATA_SCHEMA_VERSION,
            "family": family,
            "order": order,
            "metaData": metadata,
        },
    }
    return {
        "event_id": event_id,
        "event_type": EVENT_TYPE,
        "routing_key": ROUTING_KEY,
        "payload": envelope,
    }
