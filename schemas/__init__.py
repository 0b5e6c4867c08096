"""marshmallow schemas: request validation and response shapes, one module per family."""
