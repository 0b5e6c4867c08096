"""order-service: merchant orders for products and subscriptions."""

from service.auth.signing import signed_headers

__all__ = ["signed_headers"]
