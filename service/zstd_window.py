"""The zstd window a request body may use. RFC 9659 bounds the window of a zstd
Content-Encoding to 8 MiB; aiohttp's decoder takes zstd's own maximum, 128 MiB, which a
6 KB frame can declare, on any path, so the memory a stalled connection may make the
decoder hold was bounded only by that. A frame that needs more than the RFC's window is
refused (400 invalid_content_encoding where the body is read)."""

from __future__ import annotations

from aiohttp import compression_utils, http_parser
from backports.zstd import DecompressionParameter, ZstdDecompressor

ZSTD_WINDOW_LOG_MAX = 23  # 8 MiB


class BoundedZstdDecompressor(compression_utils.ZSTDDecompressor):
    def _new_decompressor(self) -> ZstdDecompressor:
        return ZstdDecompressor(
            options={DecompressionParameter.window_log_max: ZSTD_WINDOW_LOG_MAX}
        )


def bound_zstd_window() -> None:
    """Makes aiohttp's request parsers (the C one takes the class from the same module)
    decode zstd bodies with the bounded window. aiohttp offers no setting for it."""
    if not hasattr(http_parser, "ZSTDDecompressor"):
        # A newer aiohttp that builds its decoder elsewhere: refuse to run unbounded.
        raise RuntimeError("aiohttp.http_parser.ZSTDDecompressor is gone; see zstd_window.py")
    setattr(http_parser, "ZSTDDecompressor", BoundedZstdDecompressor)  # noqa: B010
