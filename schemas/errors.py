"""The two error bodies the service answers with, as service/middleware.py renders them:
the merchant envelope (every path but /external/) and the Payway-style body (/external/).

They describe responses only; the OpenAPI document is generated from them.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

MERCHANT_ERROR_EXAMPLE: dict[str, dict[str, Any]] = {
    "error": {
        "code": "validation_error",
        "message": "The request has invalid fields: product.code",
        "fields": {"product.code": ["Missing data for required field."]},
    },
    "meta": {"type": "error", "requestId": "5f0c6f1e2b7d4a7f9c3e8d1a2b4c6e8f"},
}

# The document's own example (me-order-payway-v1.txt, "Example error response").
PAYWAY_ERROR_EXAMPLE = {
    "code": "invalid_parameter",
    "field": "period_id",
    "message": "Parameter must match format (/^[a-f\\d]{24}$/)",
}


class MerchantErrorDetailSchema(Schema):
    code = fields.String(
        required=True,
        metadata={"description": "Machine-readable error code, e.g. `invalid_signature`."},
    )
    message = fields.String(required=True, metadata={"description": "Human-readable text."})
    fields_ = fields.Dict(
        data_key="fields",
        keys=fields.String(),
        values=fields.List(fields.String()),
        required=True,
        metadata={
            "description": "Every bad input by its path (`product.code`, "
            "`products[0].productCode`, `headers.x-buyer-ip`); empty when none applies."
        },
    )


class ErrorMetaSchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf(["error"]))
    requestId = fields.String(
        required=True,
        metadata={"description": "The request id, also in the X-Request-ID response header."},
    )


class MerchantErrorSchema(Schema):
    """Error body of the merchant endpoints (and of health, docs and unknown paths)."""

    error = fields.Nested(MerchantErrorDetailSchema, required=True)
    meta = fields.Nested(ErrorMetaSchema, required=True)


class PaywayErrorSchema(Schema):
    """Error body of the Payway-style endpoints under /external/."""

    code = fields.String(
        required=True,
        metadata={
            "description": "invalid_parameter, unknown_parameter, json_parser_error, "
            "invalid_content_type_error, unauthorized, insufficient_scope, ..."
        },
    )
    field = fields.String(metadata={"description": "The field the error is about, if one."})
    message = fields.String(required=True)
