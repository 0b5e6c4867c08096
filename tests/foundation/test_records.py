"""@record: a plain slots dataclass at run time, frozen to the type checker."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mypy import api as mypy_api

from service.records import record


@record
class Line:
    code: str
    amount: int = 0


def test_a_record_is_a_slots_dataclass_with_fields_defaults_and_equality() -> None:
    line = Line("premium_1m")
    assert dataclasses.is_dataclass(line)
    assert [field.name for field in dataclasses.fields(line)] == ["code", "amount"]
    assert line == Line("premium_1m", 0)
    assert not hasattr(line, "__dict__")


def test_the_type_checker_refuses_an_assignment_to_a_records_field(tmp_path: Path) -> None:
    snippet = tmp_path / "assigns_a_field.py"
    snippet.write_text(
        "from service.records import record\n"
        "@record\n"
        "class Line:\n"
        "    code: str\n"
        "line = Line('premium_1m')\n"
        "line.code = 'other'\n"
    )
    out, _, status = mypy_api.run(["--no-incremental", "--no-error-summary", str(snippet)])
    assert status == 1
    assert 'Property "code" defined in "Line" is read-only' in out
