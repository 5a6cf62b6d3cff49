"""Helpers of the registry's command-line tests."""

from __future__ import annotations

from collections.abc import Callable

from typer.testing import Result

Run = Callable[..., Result]  # run("list", "--json"): `shadowline models list --json`


def ok(result: Result) -> str:
    """The command's stdout; fails the test (showing the output) unless it exited 0."""
    assert result.exit_code == 0, result.output
    return result.stdout


def error_line(result: Result, code: int = 1) -> str:
    """The one ``error: ...`` line of a command that failed with ``code``: nothing on stdout,
    no traceback."""
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]
