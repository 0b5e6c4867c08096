"""The order writer's batches during a run, read from the service's /metrics: how many
orders went to PostgreSQL together, on average. Under a closed loop of N connections the
mean batch shows how the requests split between the event loop and the database."""

from __future__ import annotations

import re
import urllib.request

_SERIES = re.compile(
    r"^order_service_order_write_batch_size_(?P<part>sum|count)(?:\{[^}]*\})? (?P<value>\S+)$",
    re.MULTILINE,
)


def totals(metrics_url: str) -> tuple[float, float] | None:
    """(orders, batches) written so far; None when the service exposes no such metric."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    return parse_totals(text)


def parse_totals(text: str) -> tuple[float, float] | None:
    """(orders, batches) from a Prometheus text page, summed over its series."""
    found = {"sum": 0.0, "count": 0.0}
    seen = False
    for match in _SERIES.finditer(text):
        found[match["part"]] += float(match["value"])
        seen = True
    return (found["sum"], found["count"]) if seen else None


def mean_batch(
    before: tuple[float, float] | None, after: tuple[float, float] | None
) -> float | None:
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])
