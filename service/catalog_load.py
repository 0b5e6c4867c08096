"""`order-service catalog load FILE`: validates the whole file, then upserts it in one
transaction and tells every running instance to re-read its catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import orjson
from marshmallow import ValidationError

from schemas.catalog import catalog_schema
from schemas.common import flatten_errors
from service.catalog import CATALOG_CHANNEL
from service.db import create_connection
from service.sql import queries


class CatalogFileError(ValueError):
    """The file cannot be loaded; nothing of it was written."""


def parse_catalog(raw: bytes, source: str = "catalog") -> dict[str, Any]:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CatalogFileError(f"{source}: not valid JSON: {exc}") from None
    try:
        loaded: dict[str, Any] = catalog_schema.load(document)
    except ValidationError as exc:
        lines = [
            f"{path}: {'; '.join(msgs)}"
            for path, msgs in flatten_errors(exc.messages, dict_fields=True).items()
        ]
        raise CatalogFileError(f"{source}: invalid catalog:\n  " + "\n  ".join(lines)) from None
    return loaded


async def load_catalog_file(database_url: str, path: Path) -> dict[str, int]:
    try:
        raw = path.read_bytes()  # noqa: ASYNC240 - a one-off CLI read before any I/O
    except OSError as exc:
        raise CatalogFileError(f"{path}: {exc.strerror}") from None
    catalog = parse_catalog(raw, str(path))
    conn = await create_connection(database_url)
    try:
        return await upsert_catalog(conn, catalog)
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as exc:
        # What only the database can see: the file against what is stored (a coupon's
        # max_redemptions below the redemptions it already had, say). Rolled back whole.
        # asyncpg's message already carries PostgreSQL's DETAIL (naming the row).
        raise CatalogFileError(f"{path}: refused by the database: {exc}") from None
    finally:
        await conn.close()


async def upsert_catalog(conn: asyncpg.Connection, catalog: dict[str, Any]) -> dict[str, int]:
    counts = {"merchants": 0, "products": 0, "coupons": 0, "buyers": 0}
    async with conn.transaction():
        # One load at a time: two loads naming merchants in different orders would
        # deadlock on their rows, and one of them fail (as `migrate` does, with its own key).
        await conn.execute(queries.lock_catalog_load)
        merchant_ids = []
        for m in catalog["merchants"]:
            merchant_id = await _upsert_merchant(conn, m)
            merchant_ids.append(merchant_id)
            counts["merchants"] += 1
            product_ids: dict[str, int] = {}
            for p in m["products"]:
                product_ids[p["code"]] = await _upsert_product(conn, merchant_id, p)
                counts["products"] += 1
            for b in m["buyers"]:
                await _upsert_buyer(conn, merchant_id, b, product_ids)
                counts["buyers"] += 1
        # Coupons last: an order redeeming a coupon waits for the row a load has written
        # until the load commits, so the rows are taken just before the commit, not for
        # the whole load (a big file takes many seconds).
        for merchant_id, m in zip(merchant_ids, catalog["merchants"], strict=True):
            for c in m["coupons"]:
                await conn.execute(
                    queries.upsert_coupon,
                    merchant_id,
                    c["code"],
                    c.get("percent_off"),
                    c.get("amount_off"),
                    c["max_redemptions"],
                    c["times_redeemed"],
                    c["valid_from"],
                    c["valid_until"],
                    c["active"],
                )
                counts["coupons"] += 1
        await conn.execute(queries.notify, CATALOG_CHANNEL)
    return counts


async def _upsert_merchant(conn: asyncpg.Connection, m: dict[str, Any]) -> int:
    merchant_id: int = await conn.fetchval(
        queries.upsert_merchant, m["code"], m["name"], m["default_currency"], m["order_prefix"]
    )
    await conn.execute(
        queries.upsert_merchant_settings,
        merchant_id,
        m["precheck_autocharge"]["desktop"],
        m["precheck_autocharge"]["mobile"],
        m["payment_page_url"],
        m["default_host"],
    )
    for k in m["keys"]:
        owner = await conn.fetchval(
            queries.upsert_merchant_key, k["public_key"], merchant_id, k["secret"], k["status"]
        )
        if owner != merchant_id:
            raise CatalogFileError(
                f"merchant {m['code']!r}: key {k['public_key']!r} belongs to another merchant"
            )
    for s in m["subbrands"]:
        await conn.execute(queries.upsert_subbrand, merchant_id, s["alias"], s["host"])
    return merchant_id


async def _upsert_product(conn: asyncpg.Connection, merchant_id: int, p: dict[str, Any]) -> int:
    product_id: int = await conn.fetchval(
        queries.upsert_product,
        merchant_id,
        p["code"],
        p["name"],
        p["kind"],
        p["billing_period"],
        p["tier"],
    )
    await conn.execute(
        queries.replace_product_prices, product_id, list(p["prices"]), list(p["prices"].values())
    )
    for period in p["periods"]:
        owner = await conn.fetchval(
            queries.upsert_period,
            period["id"],
            product_id,
            period["length"],
            period["prices"],
            period["payment_method"],
        )
        if owner != product_id:
            raise CatalogFileError(f"period {period['id']!r} belongs to another product")
    return product_id


async def _upsert_buyer(
    conn: asyncpg.Connection, merchant_id: int, b: dict[str, Any], product_ids: dict[str, int]
) -> None:
    owner = await conn.fetchval(queries.upsert_buyer, b["id"], merchant_id, b["email"])
    if owner != merchant_id:
        raise CatalogFileError(f"buyer {b['id']} belongs to another merchant")
    for cm in b["charge_methods"]:
        owner_buyer = await conn.fetchval(
            queries.upsert_charge_method, cm["id"], b["id"], cm["type"], cm["status"]
        )
        if owner_buyer != b["id"]:
            raise CatalogFileError(f"charge method {cm['id']!r} belongs to another buyer")
    for s in b["subscriptions"]:
        owner_buyer = await conn.fetchval(
            queries.upsert_subscription,
            s["id"],
            b["id"],
            product_ids[s["product_code"]],
            s["status"],
            s["current_period_end"],
        )
        if owner_buyer != b["id"]:
            raise CatalogFileError(f"subscription {s['id']} belongs to another buyer")
