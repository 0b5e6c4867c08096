"""`catalog load`: the demo file, a re-load, and bad files refused whole with a named error."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from service.catalog_load import CatalogFileError, load_catalog_file, parse_catalog, upsert_catalog
from service.db import create_connection
from service.sql import queries
from tests.conftest import DEMO_CATALOG

ORDER_SERVICE = str(Path(sys.executable).parent / "order-service")
CATALOG_TABLES = (
    "merchants",
    "merchant_keys",
    "merchant_settings",
    "subbrands",
    "products",
    "product_prices",
    "coupons",
    "buyers",
    "charge_methods",
    "subscriptions",
    "periods",
)
Document = dict[str, Any]


def demo() -> Document:
    document: Document = orjson.loads(DEMO_CATALOG.read_bytes())
    return document


def write(tmp_path: Path, document: Document | bytes) -> Path:
    path = tmp_path / "catalog.json"
    path.write_bytes(document if isinstance(document, bytes) else orjson.dumps(document))
    return path


async def dump(url: str) -> dict[str, list[str]]:
    """Every row of every catalog table (as sorted JSON text), and the sequences that
    loading makes, so two dumps are equal exactly when nothing changed."""
    conn = await asyncpg.connect(url)
    try:
        tables = {
            # A fixed list of our own table names, not input: safe to format in.
            table: sorted(
                r[0] for r in await conn.fetch(f"SELECT to_jsonb(t)::text FROM {table} t")
            )
            for table in CATALOG_TABLES
        }
        tables["sequences"] = sorted(
            r[0] for r in await conn.fetch("SELECT relname FROM pg_class WHERE relkind = 'S'")
        )
        return tables
    finally:
        await conn.close()


def _rows(snapshot: dict[str, list[str]]) -> int:
    return sum(len(rows) for name, rows in snapshot.items() if name != "sequences")


async def test_the_demo_catalog_loads(migrated_database_url: str) -> None:
    summary = await load_catalog_file(migrated_database_url, DEMO_CATALOG)

    document = demo()
    merchants = document["merchants"]
    products = [p for m in merchants for p in m["products"]]
    buyers = [b for m in merchants for b in m.get("buyers", [])]
    assert summary == {
        "merchants": len(merchants),
        "products": len(products),
        "coupons": sum(len(m.get("coupons", [])) for m in merchants),
        "buyers": len(buyers),
    }
    snapshot = await dump(migrated_database_url)
    expected = {
        "merchants": len(merchants),
        "merchant_settings": len(merchants),
        "merchant_keys": sum(len(m.get("keys", [])) for m in merchants),
        "subbrands": sum(len(m.get("subbrands", [])) for m in merchants),
        "products": len(products),
        "product_prices": sum(len(p["prices"]) for p in products),
        "periods": sum(len(p.get("periods", [])) for p in products),
        "buyers": len(buyers),
        "charge_methods": sum(len(b.get("charge_methods", [])) for b in buyers),
        "subscriptions": sum(len(b.get("subscriptions", [])) for b in buyers),
    }
    assert {table: len(snapshot[table]) for table in expected} == expected
    assert len(merchants) >= 2 and expected["periods"] > 0


async def test_loading_the_same_file_again_changes_nothing(migrated_database_url: str) -> None:
    await load_catalog_file(migrated_database_url, DEMO_CATALOG)
    before = await dump(migrated_database_url)

    await load_catalog_file(migrated_database_url, DEMO_CATALOG)

    assert await dump(migrated_database_url) == before


async def test_a_changed_file_updates_the_catalog(
    migrated_database_url: str, tmp_path: Path
) -> None:
    await load_catalog_file(migrated_database_url, DEMO_CATALOG)
    document = demo()
    product = document["merchants"][0]["products"][0]
    product["prices"] = {"USD": 1234}
    await load_catalog_file(migrated_database_url, write(tmp_path, document))

    conn = await asyncpg.connect(migrated_database_url)
    try:
        prices = await conn.fetch(
            "SELECT pp.currency, pp.amount FROM product_prices pp"
            " JOIN products p ON p.id = pp.product_id WHERE p.code = $1",
            product["code"],
        )
    finally:
        await conn.close()
    assert [(r["currency"], r["amount"]) for r in prices] == [("USD", 1234)]


def _set(path: str, value: Any) -> Callable[[Document], None]:
    """A change to the demo document at a dotted path such as `merchants.0.name`."""

    def change(document: Document) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return change


def _drop(path: str) -> Callable[[Document], None]:
    def change(document: Document) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return change


ADEPRIMO = "merchants.2"
BAD_FILES: dict[str, tuple[Callable[[Document], None], list[str]]] = {
    "negative price": (
        _set("merchants.0.products.3.prices.EUR", -1),
        ["merchants[0].products[3].prices.EUR", "must be 0 to 9007199254740991"],
    ),
    "unknown currency": (
        _set("merchants.0.products.0.prices.ABC", 100),
        ["merchants[0].products[0].prices.ABC", "ISO 4217"],
    ),
    "percent_off and amount_off together": (
        _set("merchants.0.coupons.0.amount_off", {"USD": 100}),
        ["merchants[0].coupons[0]", "percent_off or amount_off, never both"],
    ),
    "coupon without a reduction": (
        _drop("merchants.0.coupons.0.percent_off"),
        ["merchants[0].coupons[0]", "a coupon needs percent_off or amount_off"],
    ),
    "subscription of an unknown product": (
        _set("merchants.0.buyers.0.subscriptions.0.product_code", "no_such_product"),
        ["merchants[0].buyers[0].subscriptions[0].product_code", "no product with this code"],
    ),
    "duplicate product code": (
        _set("merchants.0.products.1.code", "basic_1m"),
        ["merchants[0].products[1].code", "duplicate code 'basic_1m'"],
    ),
    "key of another merchant in the same file": (
        _set("merchants.1.keys.0.public_key", "pk_eyezy_1"),
        ["merchants[1].keys[0].public_key", "already used at merchants[0].keys[0]"],
    ),
    "duplicate period id": (
        _set(f"{ADEPRIMO}.products.1.periods.0.id", "5cb804811d41c82b5c518ea8"),
        ["merchants[2].products[1].periods[0].id", "duplicate period id"],
    ),
    "duplicate charge method id": (
        _set("merchants.1.buyers.0.charge_methods.0.id", "cm_ann_visa"),
        [
            "merchants[1].buyers[0].charge_methods[0].id",
            "already used at merchants[0].buyers[0].charge_methods[0]",
        ],
    ),
    "missing required field": (
        _drop("merchants.0.name"),
        ["merchants[0].name", "Missing data for required field"],
    ),
    "unknown field": (
        _set("merchants.0.colour", "blue"),
        ["merchants[0].colour", "Unknown field"],
    ),
    "payment page URL without {order_id}": (
        _set("merchants.0.payment_page_url", "ftp://{host}/x"),
        ["merchants[0].payment_page_url", "an http(s) URL with {order_id}"],
    ),
    "merchant code ending in a newline": (
        _set("merchants.0.code", "eyezy\n"),
        ["merchants[0].code", "lowercase letters, digits, _ and -"],
    ),
    "order prefix ending in a newline": (
        _set("merchants.0.order_prefix", "EYEZY\n"),
        ["merchants[0].order_prefix", "1 to 20 of A-Z and 0-9"],
    ),
    "period id ending in a newline": (
        _set(f"{ADEPRIMO}.products.0.periods.0.id", "5cb804811d41c82b5c518ea8\n"),
        ["merchants[2].products[0].periods[0].id", "24 lowercase hex"],
    ),
    "billing period ending in a newline": (
        _set("merchants.0.products.0.billing_period", "P1M\n"),
        ["merchants[0].products[0].billing_period", "ISO 8601 duration"],
    ),
    "price past 2^53 - 1": (
        _set("merchants.0.products.0.prices.USD", 2**63),
        ["merchants[0].products[0].prices.USD", "must be 0 to 9007199254740991"],
    ),
    "period price past 2^53 - 1": (
        _set(f"{ADEPRIMO}.products.0.periods.0.prices.SEK", 2**63),
        ["merchants[2].products[0].periods[0].prices.SEK", "must be 0 to 9007199254740991"],
    ),
    "tier past 32 bits": (
        _set("merchants.0.products.0.tier", 2**31),
        ["merchants[0].products[0].tier", "must be -2147483648 to 2147483647"],
    ),
    "redemption limit past 32 bits": (
        _set("merchants.0.coupons.0.max_redemptions", 2**31),
        ["merchants[0].coupons[0].max_redemptions", "must be 0 to 2147483647"],
    ),
    "price that is not an integer": (
        _set("merchants.0.products.0.prices.USD", 9.99),
        ["merchants[0].products[0].prices.USD", "integer"],
    ),
    "time with a space for the T": (
        _set("merchants.0.buyers.0.subscriptions.0.current_period_end", "2026-12-23 00:00:00Z"),
        [
            "merchants[0].buyers[0].subscriptions[0].current_period_end",
            "must be an RFC 3339 date-time with an offset",
        ],
    ),
}


@pytest.fixture(params=sorted(BAD_FILES))
def bad_file(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, list[str]]:
    change, expected = BAD_FILES[request.param]
    document = demo()
    change(document)
    return write(tmp_path, document), expected


async def test_a_bad_file_is_refused_naming_the_entry_and_nothing_is_written(
    migrated_database_url: str, bad_file: tuple[Path, list[str]]
) -> None:
    path, expected = bad_file

    with pytest.raises(CatalogFileError) as refused:
        await load_catalog_file(migrated_database_url, path)

    for fragment in expected:
        assert fragment in str(refused.value)
    assert _rows(await dump(migrated_database_url)) == 0


async def test_the_demo_period_id_is_the_one_the_duplicate_case_reuses() -> None:
    # Keeps the "duplicate period id" case honest if the demo file changes.
    periods = [p["id"] for p in demo()["merchants"][2]["products"][0]["periods"]]
    assert "5cb804811d41c82b5c518ea8" in periods


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"merchants": [', "not valid JSON"),
        (b"[]", "invalid catalog"),
        (b"{}", "merchants: Missing data for required field"),
    ],
)
async def test_a_file_that_is_not_a_catalog_is_refused(
    migrated_database_url: str, tmp_path: Path, raw: bytes, expected: str
) -> None:
    with pytest.raises(CatalogFileError, match=expected):
        await load_catalog_file(migrated_database_url, write(tmp_path, raw))


async def test_a_missing_file_is_refused(migrated_database_url: str, tmp_path: Path) -> None:
    with pytest.raises(CatalogFileError, match="No such file"):
        await load_catalog_file(migrated_database_url, tmp_path / "nope.json")


# Every time field of the format, as a dotted path into the demo and as the loader names it.
TIME_FIELDS = {
    "coupon valid_from": "merchants.0.coupons.0.valid_from",
    "coupon valid_until": "merchants.0.coupons.0.valid_until",
    "subscription current_period_end": "merchants.0.buyers.0.subscriptions.0.current_period_end",
}
# What datetime.fromisoformat (and so marshmallow's AwareDateTime) reads but RFC 3339's
# date-time does not allow; every one has an offset, so only the form is wrong.
NOT_RFC_3339 = {
    "space for the T": "2026-12-02 10:10:10Z",
    "underscore for the T": "2026-12-02_10:10:10Z",
    "week date": "2026-W48-3T10:10:10Z",
    "week date, basic format": "2026W483T101010Z",
    "ordinal date": "2026-336T10:10:10Z",
    "basic format": "20261202T101010Z",
    "basic format time": "2026-12-02T101010Z",
    "hours only": "2026-12-02T10Z",
    "fractional hours": "2026-12-02T10.5Z",
    "no seconds": "2026-12-02T10:10Z",
    "fractional minutes": "2026-12-02T10:10.5Z",
    "comma before the fraction": "2026-12-02T10:10:10,5Z",
    "dot without a fraction": "2026-12-02T10:10:10.Z",
    "space before the Z": "2026-12-02T10:10:10 Z",
    "offset without a colon": "2026-12-02T10:10:10+0100",
    "offset in hours only": "2026-12-02T10:10:10+01",
    "offset with seconds": "2026-12-02T10:10:10+01:00:30",
    "date only": "2026-12-02",
    "non-ASCII digits": "\uff12\uff10\uff12\uff16-12-02T10:10:10Z",
    "leap second": "2026-12-31T23:59:60Z",
    "no such day": "2026-02-30T10:10:10Z",
    "hour 24": "2026-12-02T24:00:00Z",
    "not a string": 1796292610,
    # The format's times are RFC 3339 (README: "with an offset"): a time without one is
    # refused, not taken as UTC.
    "no offset": "2026-12-02T10:10:10",
}
RFC_3339 = {
    "Z": ("2026-12-02T10:10:10Z", datetime(2026, 12, 2, 10, 10, 10, tzinfo=UTC)),
    "lowercase t and z": ("2026-12-02t10:10:10z", datetime(2026, 12, 2, 10, 10, 10, tzinfo=UTC)),
    "offset": (
        "2026-12-02T10:10:10+05:30",
        datetime(2026, 12, 2, 10, 10, 10, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ),
    "unknown local offset -00:00": (
        "2026-12-02T10:10:10-00:00",
        datetime(2026, 12, 2, 10, 10, 10, tzinfo=UTC),
    ),
    "fraction finer than microseconds": (
        "2026-12-02T10:10:10.123456789Z",
        datetime(2026, 12, 2, 10, 10, 10, 123456, tzinfo=UTC),
    ),
}


def _time_document(field: str, value: Any) -> bytes:
    document = demo()
    _set(TIME_FIELDS[field], value)(document)
    if field == "coupon valid_from":
        # Keeps valid_from before valid_until whatever year the case is in.
        document["merchants"][0]["coupons"][0].pop("valid_until")
    return orjson.dumps(document)


def _loaded_time(catalog: Document, field: str) -> Any:
    node: Any = catalog
    for part in TIME_FIELDS[field].split("."):
        node = node[int(part)] if part.isdigit() else node[part]
    return node


def _error_name(field: str) -> str:
    return TIME_FIELDS[field].replace(".0", "[0]")


@pytest.mark.parametrize("field", sorted(TIME_FIELDS))
@pytest.mark.parametrize("value", NOT_RFC_3339.values(), ids=NOT_RFC_3339.keys())
def test_a_time_that_is_not_rfc_3339_is_refused_by_its_path(field: str, value: Any) -> None:
    with pytest.raises(CatalogFileError) as refused:
        parse_catalog(_time_document(field, value))

    assert (
        f"{_error_name(field)}: must be an RFC 3339 date-time with an offset, "
        "e.g. 2026-01-01T00:00:00Z"
    ) in str(refused.value)


@pytest.mark.parametrize("field", sorted(TIME_FIELDS))
@pytest.mark.parametrize(("value", "expected"), RFC_3339.values(), ids=RFC_3339.keys())
def test_an_rfc_3339_time_is_read_as_the_instant_it_names(
    field: str, value: str, expected: datetime
) -> None:
    moment = _loaded_time(parse_catalog(_time_document(field, value)), field)

    assert moment == expected
    assert moment.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("field", sorted(TIME_FIELDS))
@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_time_outside_the_years_1_to_9999_in_utc_is_refused_by_its_path(
    field: str, value: str
) -> None:
    # Both are RFC 3339, but their instant in UTC is in year 0 or 10000, which the
    # database driver cannot send: refused by path, not as "refused by the database".
    with pytest.raises(CatalogFileError) as refused:
        parse_catalog(_time_document(field, value))

    assert f"{_error_name(field)}: must be within the years 0001 to 9999 in UTC" in str(
        refused.value
    )


def _new_merchant(code: str, **entries: Any) -> Document:
    """A merchant the database does not know yet: the demo's second merchant, renamed,
    with only its settings, subbrands and products (no ids shared with anyone)."""
    merchant: Document = demo()["merchants"][1]
    merchant.update(code=code, name=code.title(), keys=[], buyers=[], coupons=[])
    for product in merchant["products"]:
        product["periods"] = []
    merchant.update(entries)
    return merchant


def _newcomers_then(**entries: Any) -> Document:
    """A valid file whose first merchant is new, so a partial write would show, and whose
    second merchant carries `entries`."""
    return {"merchants": [_new_merchant("newcomer"), _new_merchant("latecomer", **entries)]}


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (
            {"keys": [{"public_key": "pk_eyezy_1", "secret": "stolen_secret"}]},
            "key 'pk_eyezy_1' belongs to another merchant",
        ),
        (
            {"buyers": [{"id": "9b2f6c1e-4a57-4f0e-9d0c-2f7a1f0c3b11", "email": "x@example.com"}]},
            "buyer 9b2f6c1e-4a57-4f0e-9d0c-2f7a1f0c3b11 belongs to another merchant",
        ),
        (
            {
                "buyers": [
                    {
                        "id": "00000000-0000-4000-8000-000000000001",
                        "email": "x@example.com",
                        "charge_methods": [{"id": "cm_ann_visa", "type": "card"}],
                    }
                ]
            },
            "charge method 'cm_ann_visa' belongs to another buyer",
        ),
        (
            {
                "products": [
                    {
                        "code": "weekly",
                        "name": "Weekly",
                        "kind": "one_time",
                        "prices": {"SEK": 100},
                        "periods": [
                            {
                                "id": "5cb804811d41c82b5c518ea8",
                                "length": "P7D",
                                "prices": {"SEK": 100},
                                "payment_method": "card",
                            }
                        ],
                    }
                ]
            },
            "period '5cb804811d41c82b5c518ea8' belongs to another product",
        ),
    ],
)
async def test_an_id_owned_by_another_merchant_in_the_database_is_refused(
    migrated_database_url: str, tmp_path: Path, entries: dict[str, Any], expected: str
) -> None:
    await load_catalog_file(migrated_database_url, DEMO_CATALOG)
    before = await dump(migrated_database_url)

    with pytest.raises(CatalogFileError, match=expected):
        await load_catalog_file(migrated_database_url, write(tmp_path, _newcomers_then(**entries)))

    assert await dump(migrated_database_url) == before


async def _cli(url: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        ORDER_SERVICE,
        *args,
        env={**os.environ, "DATABASE_URL": url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_the_cli_refuses_a_bad_file_with_status_1(
    migrated_database_url: str, tmp_path: Path
) -> None:
    document = demo()
    document["merchants"][0]["products"][3]["prices"]["EUR"] = -1
    path = write(tmp_path, document)

    status, _, stderr = await _cli(migrated_database_url, "catalog", "load", str(path))

    assert status == 1
    assert "merchants[0].products[3].prices.EUR: must be 0 to 9007199254740991" in stderr
    assert str(path) in stderr
    assert _rows(await dump(migrated_database_url)) == 0


async def test_the_cli_loads_the_demo_file(migrated_database_url: str) -> None:
    status, stdout, stderr = await _cli(migrated_database_url, "catalog", "load", str(DEMO_CATALOG))

    assert status == 0, stderr
    line = orjson.loads(stdout.splitlines()[-1])
    assert line["event"] == "catalog_loaded"
    assert line["merchants"] == len(demo()["merchants"])


async def test_a_limit_below_the_redemptions_made_is_refused_by_the_database_whole(
    migrated_database_url: str, tmp_path: Path
) -> None:
    await load_catalog_file(migrated_database_url, DEMO_CATALOG)
    conn = await asyncpg.connect(migrated_database_url)
    try:
        await conn.execute("UPDATE coupons SET times_redeemed = 2 WHERE code = 'WELCOME10'")
        before = await dump(migrated_database_url)
        document = demo()
        document["merchants"][0]["name"] = "Renamed in the refused file"
        document["merchants"][0]["coupons"][0]["max_redemptions"] = 1
        with pytest.raises(CatalogFileError) as refused:
            await load_catalog_file(migrated_database_url, write(tmp_path, document))
        assert "refused by the database" in str(refused.value)
        assert "WELCOME10" in str(refused.value)  # PostgreSQL's detail names the row
        assert str(refused.value).count("Failing row contains") == 1
        assert await dump(migrated_database_url) == before
    finally:
        await conn.close()


class RecordingConnection:
    """A connection that notes the statements it runs, in order."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.statements: list[str] = []

    def transaction(self) -> Any:
        return self.conn.transaction()

    async def execute(self, query: str, *args: Any) -> Any:
        self.statements.append(query)
        return await self.conn.execute(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        self.statements.append(query)
        return await self.conn.fetchval(query, *args)


async def test_coupons_are_written_last_so_orders_wait_for_them_only_briefly(
    migrated_database_url: str,
) -> None:
    # An order redeeming a coupon waits for a row the load has written until the load
    # commits: with coupons first, a big file held them for all of its many seconds.
    conn = await create_connection(migrated_database_url)
    try:
        recording = RecordingConnection(conn)
        await upsert_catalog(recording, parse_catalog(DEMO_CATALOG.read_bytes()))  # type: ignore[arg-type]
    finally:
        await conn.close()
    kinds = ["coupon" if q == queries.upsert_coupon else "other" for q in recording.statements]
    first_coupon = kinds.index("coupon")
    assert set(kinds[first_coupon:-1]) == {"coupon"}  # then only the NOTIFY
    assert recording.statements[-1] == queries.notify


async def test_a_status_left_out_keeps_the_stored_one_and_a_new_entry_is_active(
    migrated_database_url: str, tmp_path: Path
) -> None:
    # Revocation, retirement and expiry are undone only by a file that says so: leaving
    # `status` (or a coupon's `active`) out of a reload must not revive a revoked key.
    await load_catalog_file(migrated_database_url, DEMO_CATALOG)
    document = demo()
    eyezy = document["merchants"][0]
    for key in eyezy["keys"]:
        key.pop("status", None)
    eyezy["keys"].append({"public_key": "pk_eyezy_new", "secret": "sk_eyezy_new_secret"})
    for coupon in eyezy["coupons"]:
        coupon.pop("active", None)
    for buyer in eyezy["buyers"]:
        for method in buyer["charge_methods"]:
            method.pop("status", None)
        for subscription in buyer["subscriptions"]:
            subscription.pop("status", None)
    conn = await asyncpg.connect(migrated_database_url)
    try:
        before = {
            "keys": await conn.fetch("SELECT public_key, status FROM merchant_keys ORDER BY 1"),
            "coupons": await conn.fetch("SELECT code, active FROM coupons ORDER BY 1"),
            "methods": await conn.fetch("SELECT id, status FROM charge_methods ORDER BY 1"),
            "subscriptions": await conn.fetch("SELECT id, status FROM subscriptions ORDER BY 1"),
        }
        assert ("pk_eyezy_old", "revoked") in [tuple(r) for r in before["keys"]]
        await load_catalog_file(migrated_database_url, write(tmp_path, document))
        keys = {
            r[0]: r[1] for r in await conn.fetch("SELECT public_key, status FROM merchant_keys")
        }
        assert keys.pop("pk_eyezy_new") == "active"
        assert keys == {r[0]: r[1] for r in before["keys"]}
        assert await conn.fetch("SELECT code, active FROM coupons ORDER BY 1") == before["coupons"]
        methods = await conn.fetch("SELECT id, status FROM charge_methods ORDER BY 1")
        assert methods == before["methods"]
        subscriptions = await conn.fetch("SELECT id, status FROM subscriptions ORDER BY 1")
        assert subscriptions == before["subscriptions"]
    finally:
        await conn.close()


async def test_a_reload_never_gives_back_redemptions_orders_used(
    migrated_database_url: str, tmp_path: Path
) -> None:
    # The file seeds times_redeemed (0 here); orders then redeemed the coupon twice. Loading
    # the same file again used to set the counter back to 0, and the coupon's limit let
    # as many orders again redeem it.
    document = demo()
    coupon = document["merchants"][0]["coupons"][0]
    coupon.update(max_redemptions=5, times_redeemed=0)
    path = write(tmp_path, document)
    await load_catalog_file(migrated_database_url, path)
    conn = await asyncpg.connect(migrated_database_url)
    try:
        await conn.execute("UPDATE coupons SET times_redeemed = 2 WHERE code = $1", coupon["code"])
        await load_catalog_file(migrated_database_url, path)
        assert await redeemed(conn, coupon["code"]) == 2
        # A higher count in the file still seeds it.
        coupon["times_redeemed"] = 4
        await load_catalog_file(migrated_database_url, write(tmp_path, document))
        assert await redeemed(conn, coupon["code"]) == 4
    finally:
        await conn.close()


async def redeemed(conn: asyncpg.Connection, code: str) -> int:
    count: int = await conn.fetchval("SELECT times_redeemed FROM coupons WHERE code = $1", code)
    return count


async def test_two_loads_at_once_both_succeed(migrated_database_url: str, tmp_path: Path) -> None:
    # Two files naming the merchants in opposite orders: each load locked one merchant's
    # row and waited for the other's, and PostgreSQL failed one of them as a deadlock.
    # Loads now take turns.
    await load_catalog_file(migrated_database_url, DEMO_CATALOG)
    forward = demo()
    backward = demo()
    backward["merchants"].reverse()
    for document in (forward, backward):
        for merchant in document["merchants"]:
            merchant["name"] = f"{merchant['name']} (renamed)"
    (tmp_path / "forward").mkdir()
    (tmp_path / "backward").mkdir()
    forward_path = write(tmp_path / "forward", forward)
    backward_path = write(tmp_path / "backward", backward)
    for _ in range(5):
        await asyncio.gather(
            load_catalog_file(migrated_database_url, forward_path),
            load_catalog_file(migrated_database_url, backward_path),
        )
