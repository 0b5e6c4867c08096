"""JSON Schema `pattern`s from the Python regular expressions the schemas validate with,
so a client validating against the document accepts exactly what the service does.

JSON Schema patterns are ECMA-262 regexes with no flags and no implicit anchors: a
pattern is anchored here, and a case-insensitive one is spelled out in both cases.
"""

from __future__ import annotations

import re


def anchored(pattern: re.Pattern[str]) -> str:
    """The pattern as a JSON Schema pattern matching the whole string, as fullmatch does."""
    source = pattern.pattern
    if pattern.flags & re.IGNORECASE:
        source = _both_cases(source)
    return f"^(?:{source})$"


def _both_cases(source: str) -> str:
    """`source` matching either case of every ASCII letter, without the IGNORECASE flag:
    a letter outside a class becomes [xX], a lowercase range in a class gains its
    uppercase twin. Escapes (\\d, \\.) are kept as they are."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(source):
        char = source[i]
        if char == "\\":
            out.append(source[i : i + 2])
            i += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
                out.append(char)
            elif (
                char.islower() and source[i + 1 : i + 2] == "-" and source[i + 2 : i + 3].islower()
            ):
                end = source[i + 2]
                out.append(f"{char}-{end}{char.upper()}-{end.upper()}")
                i += 3
                continue
            elif char.isascii() and char.isalpha():
                out.append(char.lower() + char.upper())
            else:
                out.append(char)
        elif char == "[":
            in_class = True
            out.append(char)
        elif char.isascii() and char.isalpha():
            out.append(f"[{char.lower()}{char.upper()}]")
        else:
            out.append(char)
        i += 1
    return "".join(out)
