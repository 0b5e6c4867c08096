"""GET /metrics: Prometheus text with the service's metrics."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.faults.harness import initials_body, signed

DECLARED = (
    "order_service_http_requests_total counter",
    "order_service_http_request_duration_seconds histogram",
    "order_service_orders_created_total counter",
    "order_service_outbox_backlog gauge",
    "order_service_outbox_oldest_unsent_age_seconds gauge",
    "order_service_events_published_total counter",
    "order_service_event_publish_failures_total counter",
    "order_service_db_pool_size gauge",
    "order_service_db_pool_in_use gauge",
)


async def scrape(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_every_declared_metric_is_exposed(client: Any) -> None:
    response = await client.get("/metrics")
    text = await response.text()
    for name in DECLARED:
        assert f"# TYPE {name}\n" in text, name
    assert "_created gauge" not in text


async def test_requests_are_counted_by_route_template_and_status(client: Any) -> None:
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get("/health/live")).status == 200
    assert (await client.get("/api/v3/orders/doesnotexist")).status == 401
    assert (await client.get("/no/such/route")).status == 404
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    counter = "order_service_http_requests_total"
    assert delta(counter, route="/health/live", method="GET", status="200") == 3
    assert delta(counter, route="/api/v3/orders/{orderId}", method="GET", status="401") == 1
    assert delta(counter, route="unmatched", method="GET", status="404") == 1
    histogram = "order_service_http_request_duration_seconds_count"
    assert delta(histogram, route="/health/live", method="GET") == 3


async def test_orders_are_counted_by_family_and_pool_is_sampled(client: Any) -> None:
    before = await scrape(client)
    raw = initials_body()
    response = await client.post("/api/v2/initials/url", data=raw, headers=signed(raw))
    assert response.status == 200
    after = await scrape(client)
    name = "order_service_orders_created_total"
    assert value(after, name, family="initials_url") - value(before, name, family="initials_url")
    assert value(after, "order_service_db_pool_size") >= 1
    assert (
        0
        <= value(after, "order_service_db_pool_in_use")
        <= value(after, "order_service_db_pool_size")
    )


async def test_metrics_can_be_switched_off(aiohttp_client: Any, config: Any) -> None:
    from dataclasses import replace

    from service.app import create_app

    client = await aiohttp_client(create_app(replace(config, metrics_enabled=False)))
    assert (await client.get("/metrics")).status == 404


def test_every_family_is_counted_from_the_start() -> None:
    # In a fresh process (this one's registry has seen orders): a rate() or an alert on
    # a family must see 0 before the family's first order, not nothing.
    script = (
        "import service.metrics; from prometheus_client import generate_latest; "
        "print(generate_latest().decode())"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    for family in ("initials_url", "oneclick", "me_order"):
        assert f'order_service_orders_created_total{{family="{family}"}} 0.0' in shown


RELAY_TYPES = (
    "order_service_outbox_backlog gauge",
    "order_service_outbox_oldest_unsent_age_seconds gauge",
    "order_service_events_published_total counter",
    "order_service_event_publish_failures_total counter",
    "order_service_events_unroutable_total counter",
)


@pytest.mark.parametrize(
    ("relay_enabled", "instance_relay", "shown"),
    [
        (True, None, True),  # the relay runs in this process
        (False, None, False),  # RELAY_ENABLED=false: `order-service relay` has them
        (False, True, True),  # a worker of an instance whose first worker runs the relay
    ],
)
async def test_relay_metrics_are_shown_only_by_an_instance_that_runs_a_relay(
    aiohttp_client: Any,
    config: Any,
    relay_enabled: bool,
    instance_relay: bool | None,
    shown: bool,
) -> None:
    from dataclasses import replace

    from service.app import create_app

    app = create_app(replace(config, relay_enabled=relay_enabled, instance_relay=instance_relay))
    text = await (await (await aiohttp_client(app)).get("/metrics")).text()
    assert [f"# TYPE {name}\n" in text for name in RELAY_TYPES] == [shown] * len(RELAY_TYPES)
    assert "# TYPE order_service_orders_created_total counter\n" in text
