"""`order-service sign`: headers for curl, quoted so that the README's eval reads them back
exactly, whatever the values hold."""

from __future__ import annotations

import shlex

import pytest

from service.cli import main as cli_main


def test_the_signed_headers_read_back_exactly_as_shell_words(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "warning")
    # A quote ended the single-quoted word before, and what followed it ran as shell text
    # under the README's eval.
    source_id = "o'brien $(touch /tmp/pwned) `id`"
    argv = ["sign", "--public-key", "pk_eyezy_1", "--secret", "s", "--path", "/x"]
    assert cli_main([*argv, "--source-id", source_id]) == 0
    words = shlex.split(capsys.readouterr().out)
    assert words[::2] == ["-H"] * (len(words) // 2)
    headers = dict(word.split(": ", 1) for word in words[1::2])
    assert headers["x-id"] == source_id
    assert headers["x-public-key"] == "pk_eyezy_1"
