"""The toolkit every ``shadowline`` sub-command uses: errors, ``--json`` and exit codes.

One behaviour for every command: a failure the user can act on prints one line
``error: ...`` on stderr (never a traceback) and exits 1, or 2 for bad usage and bad settings
(:data:`EXIT_FAILED`, :data:`EXIT_USAGE`); ``--json`` (:data:`JsonFlag`) switches the output
from text for people to JSON (:func:`emit`).

It lives in ``registry``, the package every other one may import (DESIGN.md); ``loadtest``
imports nothing of ours, so ``shadowline.cli`` wraps its commands with :func:`guard_commands`
where it mounts them.  Module-level imports stay light (typer only): every command imports this.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from registry.config import SettingsError

EXIT_FAILED = 1
EXIT_USAGE = 2  # bad usage (typer's own) or bad settings
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

P = ParamSpec("P")
R = TypeVar("R")


class CommandFailed(Exception):
    """A user-facing failure raised inside a command: one line and an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print ``error: message`` on stderr; return the Exit to raise (``raise fail(...)``)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def emit(as_json: bool, data: Any, text: str) -> None:
    """Print ``data`` as one line of JSON when ``as_json``, else ``text``."""
    typer.echo(json.dumps(data, default=str, sort_keys=True) if as_json else text)


@contextmanager
def guard(*failures: type[Exception], code: int = EXIT_FAILED) -> Iterator[None]:
    """Turn every expected failure into one ``error:`` line and an exit code.

    :class:`CommandFailed` exits with its own code; bad settings with :data:`EXIT_USAGE`
    (the message on one line); ``failures`` (and every ``RegistryError``) with ``code``;
    Redis errors and records that no longer parse (pydantic) with :data:`EXIT_FAILED`.
    """
    import pydantic
    import redis

    from registry.errors import RegistryError
    from registry.manifest import describe_validation_error

    expected: tuple[type[Exception], ...] = (RegistryError, *failures)
    try:
        yield
    except CommandFailed as exc:
        raise fail(str(exc), exc.code) from None
    except SettingsError as exc:
        raise fail(" ".join(str(exc).split()), EXIT_USAGE) from None
    except expected as exc:
        raise fail(str(exc), code) from None
    except redis.RedisError as exc:
        raise fail(f"Redis: {exc}") from None
    except pydantic.ValidationError as exc:  # e.g. a stored record that no longer parses
        raise fail(f"invalid {exc.title}: {describe_validation_error(exc)}") from None


def guarded(
    command: Callable[P, R],
    *failures: type[Exception],
    code: int = EXIT_FAILED,
    around: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> Callable[P, R]:
    """``command`` run inside :func:`guard` (and inside ``around()``, for what it must close).

    The signature is kept (``functools.wraps``), so Typer reads the same options.
    """

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with guard(*failures, code=code), around():
            return command(*args, **kwargs)

    return run


def commands(
    app: typer.Typer,
    *failures: type[Exception],
    around: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> Callable[[str], Callable[[Callable[P, R]], Callable[P, R]]]:
    """A decorator factory: ``@command("name")`` registers a guarded command on ``app``."""

    def command(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
        def register(function: Callable[P, R]) -> Callable[P, R]:
            app.command(name)(guarded(function, *failures, around=around))
            return function

        return register

    return command


def guard_commands(app: typer.Typer, *failures: type[Exception], code: int) -> typer.Typer:
    """Guard every command already registered on ``app`` (for a package that cannot import
    this module); returns ``app``."""
    for info in app.registered_commands:
        if info.callback is not None:
            info.callback = guarded(info.callback, *failures, code=code)
    return app
