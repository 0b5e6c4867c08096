"""The in-memory catalog: merchants with their keys, settings, subbrands, products, prices,
coupons, buyers, charge methods, subscriptions and periods.

Requests read it without a database round trip. It is read whole from PostgreSQL at start
and again whenever `catalog load` commits (it sends NOTIFY catalog_changed), so several
instances stay in step without sharing memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import asyncpg
import structlog

from service.background import running_in_background
from service.errors import ServiceUnavailable
from service.outside_failures import describe
from service.sql import queries

log = structlog.get_logger(__name__)

CATALOG_CHANNEL = "catalog_changed"
# The listener's connection, as pg_stat_activity names it.
LISTENER_NAME = "order-service-catalog-listener"
# Without a notification for poll_seconds (30 s), the listener pings its connection, and
# reconnects if this passes without an answer.
LISTENER_PING_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class MerchantKey:
    public_key: str
    secret: str
    active: bool


@dataclass(frozen=True, slots=True)
class Period:
    id: str
    product_code: str
    length: str
    prices: dict[str, int]
    payment_method: str


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    code: str
    name: str
    kind: str
    billing_period: str | None
    tier: int
    prices: dict[str, int]
    periods: dict[str, Period] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Coupon:
    id: int
    code: str
    percent_off: int | None
    amount_off: dict[str, int] | None
    max_redemptions: int | None
    valid_from: datetime | None
    valid_until: datetime | None
    active: bool


@dataclass(frozen=True, slots=True)
class ChargeMethod:
    id: str
    buyer_id: UUID
    type: str
    status: str


@dataclass(frozen=True, slots=True)
class Subscription:
    id: UUID
    buyer_id: UUID
    product_code: str
    status: str
    current_period_end: datetime | None


@dataclass(frozen=True, slots=True)
class Buyer:
    id: UUID
    email: str
    charge_methods: dict[str, ChargeMethod] = field(default_factory=dict)
    subscriptions: dict[UUID, Subscription] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Merchant:
    id: int
    code: str
    name: str
    default_currency: str
    order_prefix: str
    precheck_autocharge_desktop: bool
    precheck_autocharge_mobile: bool
    payment_page_url: str
    default_host: str
    subbrands: dict[str, str] = field(default_factory=dict)  # alias -> host
    products: dict[str, Product] = field(default_factory=dict)  # by code
    coupons: dict[str, Coupon] = field(default_factory=dict)  # by code
    buyers: dict[UUID, Buyer] = field(default_factory=dict)

    def payment_url(self, order_id: str, subbrand: str | None) -> str:
        host = self.subbrands[subbrand] if subbrand else self.default_host
        return self.payment_page_url.replace("{host}", host).replace("{order_id}", order_id)


@dataclass(frozen=True, slots=True)
class Catalog:
    merchants_by_code: dict[str, Merchant]
    merchants_by_id: dict[int, Merchant]
    keys: dict[str, tuple[MerchantKey, Merchant]]  # by public key

    @classmethod
    def empty(cls) -> Catalog:
        return cls({}, {}, {})


async def read_catalog(conn: asyncpg.Connection) -> Catalog:
    """Reads every catalog table and assembles the snapshot (one consistent read)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        merchant_rows = await conn.fetch(queries.catalog_merchants)
        key_rows = await conn.fetch(queries.catalog_keys)
        subbrand_rows = await conn.fetch(queries.catalog_subbrands)
        product_rows = await conn.fetch(queries.catalog_products)
        price_rows = await conn.fetch(queries.catalog_prices)
        period_rows = await conn.fetch(queries.catalog_periods)
        coupon_rows = await conn.fetch(queries.catalog_coupons)
        buyer_rows = await conn.fetch(queries.catalog_buyers)
        method_rows = await conn.fetch(queries.catalog_charge_methods)
        subscription_rows = await conn.fetch(queries.catalog_subscriptions)

    merchants: dict[int, Merchant] = {
        r["id"]: Merchant(
            id=r["id"],
            code=r["code"],
            name=r["name"],
            default_currency=r["default_currency"],
            order_prefix=r["order_prefix"],
            precheck_autocharge_desktop=r["precheck_autocharge_desktop"],
            precheck_autocharge_mobile=r["precheck_autocharge_mobile"],
            payment_page_url=r["payment_page_url"],
            default_host=r["default_host"],
        )
        for r in merchant_rows
    }
    for r in subbrand_rows:
        merchants[r["merchant_id"]].subbrands[r["alias"]] = r["host"]

    prices: dict[int, dict[str, int]] = {}
    for r in price_rows:
        prices.setdefault(r["product_id"], {})[r["currency"]] = r["amount"]
    products_by_id: dict[int, tuple[int, Product]] = {}
    for r in product_rows:
        product = Product(
            id=r["id"],
            code=r["code"],
            name=r["name"],
            kind=r["kind"],
            billing_period=r["billing_period"],
            tier=r["tier"],
            prices=prices.get(r["id"], {}),
        )
        merchants[r["merchant_id"]].products[product.code] = product
        products_by_id[product.id] = (r["merchant_id"], product)
    for r in period_rows:
        _, product = products_by_id[r["product_id"]]
        product.periods[r["id"]] = Period(
            id=r["id"],
            product_code=product.code,
            length=r["length"],
            prices=dict(r["prices"]),
            payment_method=r["payment_method"],
        )
    for r in coupon_rows:
        merchants[r["merchant_id"]].coupons[r["code"]] = Coupon(
            id=r["id"],
            code=r["code"],
            percent_off=r["percent_off"],
            amount_off=dict(r["amount_off"]) if r["amount_off"] is not None else None,
            max_redemptions=r["max_redemptions"],
            valid_from=r["valid_from"],
            valid_until=r["valid_until"],
            active=r["active"],
        )
    buyers: dict[UUID, Buyer] = {}
    for r in buyer_rows:
        buyer = Buyer(id=r["id"], email=r["email"])
        buyers[buyer.id] = buyer
        merchants[r["merchant_id"]].buyers[buyer.id] = buyer
    for r in method_rows:
        buyers[r["buyer_id"]].charge_methods[r["id"]] = ChargeMethod(
            id=r["id"], buyer_id=r["buyer_id"], type=r["type"], status=r["status"]
        )
    for r in subscription_rows:
        _, product = products_by_id[r["product_id"]]
        buyers[r["buyer_id"]].subscriptions[r["id"]] = Subscription(
            id=r["id"],
            buyer_id=r["buyer_id"],
            product_code=product.code,
            status=r["status"],
            current_period_end=r["current_period_end"],
        )

    keys = {
        r["public_key"]: (
            MerchantKey(r["public_key"], r["secret"], r["status"] == "active"),
            merchants[r["merchant_id"]],
        )
        for r in key_rows
    }
    return Catalog(
        merchants_by_code={m.code: m for m in merchants.values()},
        merchants_by_id=merchants,
        keys=keys,
    )


class CatalogCache:
    """Holds the current snapshot and replaces it when the catalog changes."""

    def __init__(self) -> None:
        self.current = Catalog.empty()
        # False until the first read: the empty catalog would refuse every key as unknown.
        self.loaded = False
        self._changed = asyncio.Event()

    def snapshot(self) -> Catalog:
        """The current catalog, or 503 database_unavailable while it was never read (the
        database has not answered since start): a client must retry, not doubt its keys."""
        if not self.loaded:
            raise ServiceUnavailable(
                "The service has not read its catalog yet: the database is unavailable; "
                "retry shortly",
                code="database_unavailable",
                headers={"Retry-After": "1"},
            )
        return self.current

    async def refresh(self, pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn:
            self.current = await read_catalog(conn)
        self.loaded = True
        log.info("catalog_loaded", merchants=len(self.current.merchants_by_id))

    @contextlib.asynccontextmanager
    async def follow(
        self,
        pool: asyncpg.Pool,
        dsn: str,
        poll_seconds: float = 30.0,
        *,
        stop_within: Callable[[], float] | None = None,
    ) -> AsyncIterator[None]:
        """Keeps the snapshot fresh while the block runs: LISTEN on a dedicated connection,
        and a periodic re-read in case a notification was missed while disconnected.

        With the database down at start the service still starts (readiness says why);
        the listener loads the catalog as soon as the database answers. `stop_within`
        caps the listener's stop, as for running_in_background.
        """
        try:
            await self.refresh(pool)
        except Exception as exc:  # noqa: BLE001 - retried by the listener below
            log.warning("catalog_load_failed", error=describe(exc))
        async with running_in_background(
            self._listen(pool, dsn, poll_seconds), "catalog-listener", stop_within=stop_within
        ):
            yield

    async def _listen(self, pool: asyncpg.Pool, dsn: str, poll_seconds: float) -> None:
        def on_change(*_: object) -> None:
            self._changed.set()

        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    dsn, timeout=5, server_settings={"application_name": LISTENER_NAME}
                )
                # A LISTEN connection that is cut (its backend terminated, the database
                # restarted) wakes the loop at once, to reconnect and read the catalog
                # again: a load committed meanwhile sent its NOTIFY to nobody.
                conn.add_termination_listener(on_change)
                # Bounded like the ping: LISTEN on a connection that stopped answering
                # would otherwise never return, and nothing would read the catalog again.
                async with asyncio.timeout(LISTENER_PING_TIMEOUT):
                    await conn.add_listener(CATALOG_CHANNEL, on_change)
                # Anything committed between the first read and LISTEN is picked up here.
                await self.refresh(pool)
                while not conn.is_closed():
                    try:
                        # Not asyncio.wait_for: before Python 3.12 it swallows a cancel
                        # that lands as the event is set, and follow() would never end.
                        async with asyncio.timeout(poll_seconds):
                            await self._changed.wait()
                    except TimeoutError:
                        # A LISTEN connection that died silently (a frozen host, a dropped
                        # route) would hear nothing more, and answer nothing: a ping that
                        # fails or times out reconnects it.
                        await conn.fetchval(queries.ping, timeout=LISTENER_PING_TIMEOUT)
                    self._changed.clear()
                    await self.refresh(pool)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - an outage must not stop the service
                log.warning("catalog_listener_error", error=describe(exc))
                # Until it listens again, the catalog is read through the pool, which may
                # well still reach the database: a load is not missed for as long.
                with contextlib.suppress(Exception):
                    await self.refresh(pool)
                await asyncio.sleep(1.0)
            finally:
                if conn is not None and not conn.is_closed():
                    # Our own ending of it is no news: the next connection reads anyway.
                    conn.remove_termination_listener(on_change)
                    conn.terminate()  # close() could wait forever on a silent connection
