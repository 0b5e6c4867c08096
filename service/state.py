"""Typed keys for what the application holds."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from events.broker import Broker
from events.outbox_wakeup import OutboxWakeup
from events.relay import OutboxRelay
from service.auth.bearer import VerifiedTokens
from service.catalog import CatalogCache
from service.cleanup_deadline import CleanupDeadline
from service.config import Config
from service.order_writer import OrderWriter

CONFIG = web.AppKey("config", Config)
POOL = web.AppKey("pool", asyncpg.Pool)
CATALOG = web.AppKey("catalog", CatalogCache)
BROKER = web.AppKey("broker", Broker)
VERIFIED_TOKENS = web.AppKey("verified_tokens", VerifiedTokens)
RELAY = web.AppKey("relay", OutboxRelay)  # only when RELAY_ENABLED
OUTBOX_WAKEUP = web.AppKey("outbox_wakeup", OutboxWakeup)
ORDER_WRITER = web.AppKey("order_writer", OrderWriter)
CLEANUP_DEADLINE = web.AppKey("cleanup_deadline", CleanupDeadline)

# Set by handlers, read by the access log line.
MERCHANT_CODE = web.RequestKey("merchant", str)
ORDER_ID = web.RequestKey("order_id", str)
