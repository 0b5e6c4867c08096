"""Response shapes of the probes (service/handlers/health.py), for the OpenAPI document."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

CHECK_STATES = ("ok", "down")


class HealthLiveSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok"]))


class HealthChecksSchema(Schema):
    database = fields.String(required=True, validate=validate.OneOf(CHECK_STATES))
    catalog = fields.String(
        required=True,
        validate=validate.OneOf(CHECK_STATES),
        metadata={"description": "`down` until the catalog was first read from the database."},
    )
    broker = fields.String(required=True, validate=validate.OneOf(CHECK_STATES))


class HealthReadySchema(Schema):
    status = fields.String(
        required=True,
        validate=validate.OneOf(["ok", "degraded", "unavailable"]),
        metadata={
            "description": "`ok`; `degraded` (200: the broker is down, orders are taken and "
            "their events wait in the outbox); `unavailable` (503: the database is down, or "
            "the catalog was never read from it)."
        },
    )
    checks = fields.Nested(HealthChecksSchema, required=True)
    failed = fields.List(
        fields.String(validate=validate.OneOf(["database", "catalog", "broker"])),
        metadata={"description": "What is down; present only when something is."},
    )
