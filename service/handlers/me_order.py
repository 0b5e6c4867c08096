"""POST /external/api/v1/me/order: a signed-in customer's invoice or autogiro order
(Payway-style API; errors render as `{"code", "field", "message"}` under /external/)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

from aiohttp import web

from schemas.me_order import load_me_order_request
from service.auth.bearer import ORDER_WRITE_SCOPE, authenticate_customer, authorization_header
from service.domain.identifiers import new_object_id
from service.domain.me_order import check_me_order, prepare_me_order
from service.errors import BadRequest
from service.middleware import parse_json_object, read_body
from service.pipeline import OrderPlan, create_order
from service.state import CATALOG, CONFIG, MERCHANT_CODE, VERIFIED_TOKENS

routes = web.RouteTableDef()

ME_ORDER_PATH = "/external/api/v1/me/order"


@routes.post(ME_ORDER_PATH)
async def create_me_order(request: web.Request) -> web.Response:
    """Order of checks: token (401/403), body size and encoding (413/415/400),
    Content-Type and JSON (400), fields (400), catalog rules (400), then the
    one-transaction write."""
    config = request.app[CONFIG]
    customer = authenticate_customer(
        authorization_header(request.headers.getall("Authorization", [])),
        request.app[VERIFIED_TOKENS],
        request.app[CATALOG].snapshot(),
        ORDER_WRITE_SCOPE,
    )
    request[MERCHANT_CODE] = customer.merchant.code
    body = await read_body(request)
    document = parse_json_object(request, body)
    loaded = load_me_order_request(document)

    def plan() -> OrderPlan:
        order = check_me_order(customer.merchant, customer.account, loaded, now=datetime.now(UTC))
        return OrderPlan(
            prepare=partial(prepare_me_order, order, event_source=config.event_source),
            new_id=new_object_id,
        )

    return await create_order(
        request,
        body,
        document,
        idempotency_scope=f"customer:{customer.merchant.id}:{customer.account}",
        plan=plan,
        reused_error=BadRequest,
    )
