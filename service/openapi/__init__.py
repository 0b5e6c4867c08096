"""The OpenAPI 3.1 document of the HTTP API, generated from the marshmallow schemas with
apispec's marshmallow plugin. Built once at start-up (service/handlers/docs.py)."""

from service.openapi.build import build_openapi, served_operations

__all__ = ["build_openapi", "served_operations"]
