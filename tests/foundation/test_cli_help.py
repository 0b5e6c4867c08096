"""`order-service <command> --help` says what the command does and what each option is:
an operator on call reads it before the README."""

from __future__ import annotations

import argparse

import pytest

from service.cli import build_parser


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command that runs something (a leaf of the subcommand tree), with its words."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _commands(child, (*path, name))
    return found or [(path, parser)]


COMMANDS = _commands(build_parser())


def test_every_command_is_found() -> None:
    assert {" ".join(words) for words, _ in COMMANDS} == {
        "serve",
        "migrate",
        "catalog load",
        "sign",
        "token",
        "relay",
        "events tail",
    }


@pytest.mark.parametrize(("words", "parser"), COMMANDS, ids=[" ".join(w) for w, _ in COMMANDS])
def test_a_commands_help_describes_it_and_every_option(
    words: tuple[str, ...], parser: argparse.ArgumentParser
) -> None:
    assert parser.description and len(parser.description.split(". ")) >= 2, words
    assert parser.epilog and "exits 2" in parser.epilog
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, (words, action.dest)
        shown_default = action.default not in (None, False) and not action.required
        if shown_default:
            assert "%(default)s" in action.help, (words, action.dest)
    parser.format_help()  # every %(default)s expands
