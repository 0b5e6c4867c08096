"""GET /api/v3/orders/{orderId}: the stored order of any family, for its merchant only."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from schemas.orders import order_response_schema
from tests.initials.conftest import Post, order_id_of
from tests.initials.test_initials_url import FULL_BODY

ADEPRIMO_KEY = ("pk_adeprimo_1", "sk_adeprimo_1_secret")


async def test_reads_back_an_initials_order(post_initials: Post, get_order: Post) -> None:
    created = await post_initials({**FULL_BODY, "sequence": "read-back"})
    assert created.status == 200
    order_id = order_id_of(await created.json())

    response = await get_order(order_id)
    assert response.status == 200
    body = await response.json()
    assert order_response_schema.validate(body) == {}
    assert body["meta"] == {"type": "entity"}
    order = body["data"]
    assert (order["id"], order["status"], order["family"]) == (order_id, "created", "initials_url")
    assert order["currency"] == "EUR"
    assert order["baseAmount"] == 2799
    assert order["reductions"] == {
        "discount": {"percent": 15, "amount": 420},
        "coupon": {"code": "WELCOME10", "amount": 238},
    }
    assert order["total"] == 2141
    assert order["autocharge"] == {"value": False, "explicit": True}
    assert order["subbrand"] == "eyezy_app_com"
    assert order["metaData"] == FULL_BODY["metaData"]
    assert order["sequence"] == "read-back"
    assert order["items"] == [
        {
            "position": 0,
            "action": "purchase",
            "productCode": "premium_1m",
            "subscriptionId": None,
            "periodId": None,
            "unitAmount": 2799,
            "quantity": 1,
            "amount": 2799,
        }
    ]
    assert order["createdAt"].endswith("Z")
    assert "request_token" not in order and "x-token" not in str(order)


async def test_reads_an_order_of_another_family(db: asyncpg.Connection, get_order: Post) -> None:
    """A Payway-style order (24-hex id, reference, customer, period item) reads back too."""
    order_id = "65a1b2c3d4e5f60718293a4b"
    await db.execute(
        """
        INSERT INTO orders (id, merchant_id, family, reference, currency, base_amount,
                            total_amount, customer_account, details)
        SELECT $1, m.id, 'me_order', 'ADEPRIMO-1', 'SEK', 9900, 9900, 'acct-42',
               '{"address": {"city": "Umeå"}}'::jsonb
          FROM merchants m WHERE m.code = 'adeprimo'
        """,
        order_id,
    )
    await db.execute(
        """
        INSERT INTO order_items (order_id, position, product_id, product_code, period_id,
                                 unit_amount, quantity, amount)
        SELECT $1, 0, p.product_id, 'adeprimo_digital', p.id, 9900, 1, 9900
          FROM periods p WHERE p.id = '5cb804811d41c82b5c518ea8'
        """,
        order_id,
    )
    response = await get_order(order_id, key=ADEPRIMO_KEY)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert order_response_schema.validate(body) == {}
    order = body["data"]
    assert (order["family"], order["reference"], order["customerAccount"]) == (
        "me_order",
        "ADEPRIMO-1",
        "acct-42",
    )
    assert order["reductions"] == {"discount": {"percent": None, "amount": 0}, "coupon": None}
    assert order["autocharge"] == {"value": None, "explicit": None}
    assert order["items"][0]["periodId"] == "5cb804811d41c82b5c518ea8"
    assert order["details"] == {"address": {"city": "Umeå"}}
    # eyezy cannot read adeprimo's order.
    assert (await get_order(order_id)).status == 404


@pytest.mark.parametrize("order_id", ["Zz9Zz9Zz", "65a1b2c3d4e5f60718293aff", "short", "bad-id!!"])
async def test_unknown_or_malformed_id_is_not_found(get_order: Post, order_id: str) -> None:
    response = await get_order(order_id)
    assert response.status == 404
    body: dict[str, Any] = await response.json()
    assert body["error"]["code"] == "order_not_found"
    assert body["meta"]["type"] == "error"
