"""Named SQL queries, loaded once from sql/queries/*.sql.

A file holds blocks that start with a `-- name: <query_name>` line; the text up to the
next such line is the query. Parameters are always bound ($1, $2, ...).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


class Queries:
    """Attribute access to named queries: `queries.insert_order`."""

    def __init__(self, texts: dict[str, str]) -> None:
        self._texts = texts

    def __getattr__(self, name: str) -> str:
        try:
            return self._texts[name]
        except KeyError:
            raise AttributeError(f"no SQL query named {name!r} in {SQL_DIR / 'queries'}") from None

    def names(self) -> list[str]:
        return sorted(self._texts)


def parse_queries(text: str, source: str) -> dict[str, str]:
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"{source}: query {name!r} defined twice")
        queries[name] = body.strip().rstrip(";")
    return queries


@cache
def load_queries(directory: Path = SQL_DIR / "queries") -> Queries:
    texts: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        for name, body in parse_queries(path.read_text(), str(path)).items():
            if name in texts:
                raise ValueError(f"{path}: query {name!r} is defined in another file too")
            texts[name] = body
    return Queries(texts)


queries = load_queries()
