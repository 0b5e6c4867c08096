"""Prometheus metrics of the service. Declared once here; every module imports what it
counts. /metrics (service/handlers/metrics.py) renders them; `order-service relay`
renders relay_registry() (service/relay_http.py)."""

from __future__ import annotations

from typing import get_args

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from events.order_data import Family

# The *_created series (a timestamp per counter) double the output and nobody graphs them.
disable_created_metrics()  # type: ignore[no-untyped-call]

HTTP_REQUESTS = Counter(
    "order_service_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "order_service_http_request_duration_seconds",
    "Time from request to response, by route template and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
ORDERS_CREATED = Counter(
    "order_service_orders_created_total",
    "Orders committed, by endpoint family.",
    ["family"],
)
# Every family from the start, at 0: a rate() or an alert on a series that appears only
# with its first order sees nothing before it. Kept: labels() validates and joins its
# values and takes a lock on every call.
ORDERS_CREATED_BY_FAMILY = {family: ORDERS_CREATED.labels(family) for family in get_args(Family)}
ORDER_WRITE_BATCH_SIZE = Histogram(
    "order_service_order_write_batch_size",
    "Orders a writer took and sent to PostgreSQL together (group commit: each kind of order "
    "among them in one transaction); 1 is an order alone. A batch PostgreSQL refused counts "
    "too.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 500),
)
ORDER_BATCHES_WRITTEN_AGAIN = Counter(
    "order_service_order_batches_written_again_total",
    "Writes again, on a new connection, of the orders of a batch not answered when the "
    "connection it was written on was lost under it (a database restart, a terminated "
    "backend, a network cut); one per attempt.",
)
ORDER_BATCHES_WRITTEN_ALONE = Counter(
    "order_service_order_batches_written_alone_total",
    "Groups of a batch (one kind of order each) PostgreSQL refused for one of their orders "
    "(a replay, an exhausted coupon, a deadlock), whose orders were then written one by one.",
)
OUTBOX_BACKLOG = Gauge(
    "order_service_outbox_backlog",
    "Events in the outbox not yet confirmed by the broker.",
    multiprocess_mode="livemax",
)
OUTBOX_OLDEST_AGE = Gauge(
    "order_service_outbox_oldest_unsent_age_seconds",
    "Age of the oldest event not yet confirmed by the broker.",
    multiprocess_mode="livemax",
)
EVENTS_PUBLISHED = Counter(
    "order_service_events_published_total",
    "Events published to RabbitMQ and confirmed.",
)
EVENT_PUBLISH_FAILURES = Counter(
    "order_service_event_publish_failures_total",
    "Publish attempts that failed (broker down, nack, timeout); the event stays in the outbox.",
)
EVENTS_UNROUTABLE = Counter(
    "order_service_events_unroutable_total",
    "Events the broker returned as unroutable (no queue bound for the routing key); every "
    "try counts, and the event stays in the outbox to be sent again.",
)
DB_POOL_SIZE = Gauge(
    "order_service_db_pool_size",
    "Connections open in the database pool.",
    multiprocess_mode="livesum",
)
DB_POOL_IN_USE = Gauge(
    "order_service_db_pool_in_use",
    "Connections of the pool currently handed out.",
    multiprocess_mode="livesum",
)

# What the outbox relay (events/relay.py) updates, and nothing else does.
RELAY_METRICS = (
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_AGE,
    EVENTS_PUBLISHED,
    EVENT_PUBLISH_FAILURES,
    EVENTS_UNROUTABLE,
)


def relay_registry() -> CollectorRegistry:
    """The metrics of a process that runs only the relay: the relay's, and the process's
    own (CPU, memory, open files, garbage collection). The HTTP, order and pool metrics
    stay out: the process never updates them, and a 0 there would read as a fact."""
    registry = CollectorRegistry()
    for collector in (*RELAY_METRICS, PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry
