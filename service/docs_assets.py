"""The Swagger UI files the docs page loads, from the swagger-ui-bundle package on disk."""

from __future__ import annotations

from pathlib import Path

from swagger_ui_bundle import swagger_ui_path

SWAGGER_UI_DIR = Path(str(swagger_ui_path))
# Each file by name, with the media type it is served as.
ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
