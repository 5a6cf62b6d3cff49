"""Helpers of the registry's tests: running its commands, a stepping clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

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


class StepClock:
    """A clock that advances one second per reading, so audit times are distinct and known."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now
