"""The command-line toolkit: every expected failure is one ``error:`` line and an exit code."""

from __future__ import annotations

import pytest
import redis
import typer
from pydantic import BaseModel
from typer.testing import CliRunner

from registry.cli_kit import CommandFailed, JsonFlag, commands, emit, guard_commands
from registry.config import SettingsError
from registry.errors import ModelNotFound


class Point(BaseModel):
    x: int


class Broken(Exception):
    """A package's own error, mapped by the caller."""


def _app() -> typer.Typer:
    """An app whose one command raises what ``--what`` names."""
    app = typer.Typer()

    def fails(what: str, as_json: JsonFlag = False) -> None:
        failures: dict[str, Exception] = {
            "command": CommandFailed("told to stop", code=3),
            "settings": SettingsError("invalid settings for S:\n  SHADOWLINE_X=1: bad"),
            "registry": ModelNotFound("fraud", "v9"),
            "redis": redis.ConnectionError("refused"),
            "broken": Broken("the package's own"),
        }
        if what == "record":
            Point.model_validate({"x": "many"})
        if what in failures:
            raise failures[what]
        emit(as_json, {"what": what}, f"ran {what}")

    commands(app, Broken)("fails")(fails)
    app.command("other")(lambda: None)  # two commands: Typer then keeps their names
    return app


@pytest.mark.parametrize(
    ("what", "code", "line"),
    [
        ("command", 3, "error: told to stop"),
        ("settings", 2, "error: invalid settings for S: SHADOWLINE_X=1: bad"),
        ("registry", 1, "error: model fraud:v9 is not registered"),
        ("redis", 1, "error: Redis: refused"),
        ("broken", 1, "error: the package's own"),
        (
            "record",
            1,
            "error: invalid Point: x: Input should be a valid integer, unable to "
            "parse string as an integer",
        ),
    ],
)
def test_each_failure_is_one_line_and_a_code(what: str, code: int, line: str) -> None:
    result = CliRunner().invoke(_app(), ["fails", what])
    assert (result.exit_code, result.stderr, result.stdout) == (code, line + "\n", "")


def test_output_for_people_or_json() -> None:
    assert CliRunner().invoke(_app(), ["fails", "nothing"]).stdout == "ran nothing\n"
    as_json = CliRunner().invoke(_app(), ["fails", "nothing", "--json"])
    assert as_json.stdout == '{"what": "nothing"}\n'


def test_commands_mounted_from_a_package_that_cannot_import_the_toolkit() -> None:
    app = typer.Typer()

    @app.command("load")
    def load() -> None:
        raise Broken("target is not a loopback address")

    @app.command("fine")
    def fine() -> None:
        typer.echo("ok")

    guarded = guard_commands(app, Broken, code=2)
    result = CliRunner().invoke(guarded, ["load"])
    assert (result.exit_code, result.stderr) == (2, "error: target is not a loopback address\n")
    assert CliRunner().invoke(guarded, ["fine"]).stdout == "ok\n"
