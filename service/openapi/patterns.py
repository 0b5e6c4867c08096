"""JSON Schema `pattern`s from the Python regular expressions the schemas validate with,
so a client validating against the document accepts exactly what the service does.

JSON Schema patterns are ECMA-262 regexes with no flags and no implicit anchors: a
pattern is anchored here, and a case-insensitive one is spelled out in both cases.
"""

from __future__ import annotations

import re

# Escapes ECMA-262 reads as Python does and case cannot change: classes (\w already holds
# both cases), \B, and \b with the controls (a word boundary outside a class, a backspace
# inside, where the controls can bound a range and so need the character they stand for).
_KEPT_ESCAPES = frozenset("dDsSwWB")
_CONTROLS = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def anchored(pattern: re.Pattern[str]) -> str:
    """The pattern as a JSON Schema pattern matching the whole string, as fullmatch does."""
    source = pattern.pattern
    if pattern.flags & re.IGNORECASE:
        source = _both_cases(source)
    return f"^(?:{source})$"


def _both_cases(source: str) -> str:
    """`source` matching either case of every ASCII letter, without the IGNORECASE flag:
    a letter outside a class becomes [xX], a letter or range in a class gains its other
    case. What cannot be spelled out faithfully so raises ValueError. (Without re.ASCII,
    IGNORECASE also folds k and s to the Kelvin and long-s signs, which are not added.)"""
    out: list[str] = []
    i = 0
    while i < len(source):
        char = source[i]
        if char == "\\":
            text, _, i = _escape(source, i)
        elif char == "[":
            text, i = _class(source, i)
        elif source.startswith("(?", i) and not source.startswith("(?:", i):
            # Inline flags, lookarounds, named groups, conditionals: either not ECMA-262
            # or not worth the risk of a schema that disagrees with the service.
            raise ValueError(f"cannot translate the group starting {source[i : i + 4]!r}")
        else:
            text = f"[{char.lower()}{char.upper()}]" if _is_letter(char) else char
            i += 1
        out.append(text)
    return "".join(out)


def _is_letter(char: str) -> bool:
    """Whether `char` is an ASCII letter. One with case beyond ASCII is refused: IGNORECASE
    folds it by Unicode rules that are not spelled out here."""
    if not char.isascii() and char.lower() != char.upper():
        raise ValueError(f"cannot spell out {char!r} in both cases: only ASCII letters are")
    return char.isascii() and char.isalpha()


def _escape(source: str, i: int) -> tuple[str, str | None, int]:
    """The escape at source[i] as it stands, the character it means in a class (None for a
    class such as \\d), and the index past it."""
    text = source[i : i + 2]
    char = text[1:]
    if char in _CONTROLS or char in _KEPT_ESCAPES:
        return text, _CONTROLS.get(char), i + 2
    if len(char) == 1 and char.isascii() and not char.isalnum():
        return text, char, i + 2
    # \x41, \u0041, \N{...}, \101 may be a letter, and a backreference (\1) compares
    # ignoring case; \A, \Z and the like mean something else or nothing in ECMA-262.
    raise ValueError(f"cannot translate the escape {text!r} to match both cases")


def _class(source: str, start: int) -> tuple[str, int]:
    """The class opening at source[start] with both cases of its letters, and the index
    past it."""
    out = ["["]
    i = start + 1
    if source.startswith("^", i):
        out.append("^")
        i += 1
    first = i
    while i < len(source) and (i == first or source[i] != "]"):
        text, low, i = _class_atom(source, i)
        if low is not None and source[i : i + 1] == "-" and source[i + 1 : i + 2] not in ("", "]"):
            high_text, high, i = _class_atom(source, i + 1)
            text = _range(text, low, high_text, high)
        elif low is not None and _is_letter(low):
            text = low.lower() + low.upper()
        out.append(text)
    if i == len(source):
        raise ValueError(f"unterminated character class in {source!r}")
    out.append("]")
    return "".join(out), i + 1


def _class_atom(source: str, i: int) -> tuple[str, str | None, int]:
    """The class member at source[i], the character it means (None for a class such as
    \\d), and the index past it."""
    char = source[i]
    if char == "\\":
        return _escape(source, i)
    if char == "]":
        # Only reached first in the class, where Python reads "]" as a literal while
        # ECMA-262 would read "[]" as the empty class and "[^]" as any character.
        return "\\]", "]", i + 1
    return char, char, i + 1


def _range(low_text: str, low: str, high_text: str, high: str | None) -> str:
    """The range low-high with its other case added."""
    text = f"{low_text}-{high_text}"
    if high is None or not (low.isascii() and high.isascii()):
        raise ValueError(f"cannot spell out the range {text!r} in both cases: not ASCII bounds")
    if low.isalpha() and high.isalpha() and low.islower() == high.islower():
        return f"{text}{low.swapcase()}-{high.swapcase()}"
    if low.isalpha() or high.isalpha():
        # Refused, not guessed: the other case of A-z or 0-z is no single range.
        raise ValueError(
            f"cannot spell out the range {text!r} in both cases: "
            "a range with a letter must run between letters of the same case"
        )
    # Bounded by non-letters, a range holds all of an alphabet or none of it.
    upper, lower = low < "A" and high > "Z", low < "a" and high > "z"
    if upper != lower:
        text += "a-z" if upper else "A-Z"
    return text
