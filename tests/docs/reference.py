"""What exists, read from the code: every ``SHADOWLINE_*`` setting and every ``shadowline``
command with its options.  The documentation check compares the pages with these."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

import typer
from pydantic_settings import BaseSettings

from shadowline.cli import app
from tests.docs.blocks import ROOT

PACKAGES = ("registry", "service", "retrain", "loadtest", "shadowline")
_SETTINGS_CLASS = re.compile(r"^class \w+\([\w.]*Settings\):", re.M)


def settings_classes() -> list[type[BaseSettings]]:
    """Every settings class of the packages: the modules that define a ``...Settings``
    subclass are imported, then ``BaseSettings``' subclasses are walked."""
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name != "__main__.py" and _SETTINGS_CLASS.search(path.read_text()):
                module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
                importlib.import_module(module)
    found: list[type[BaseSettings]] = []
    pending: list[type[BaseSettings]] = [BaseSettings]
    while pending:
        for cls in pending.pop().__subclasses__():
            pending.append(cls)
            if cls.__module__.split(".")[0] in PACKAGES and cls not in found:
                found.append(cls)
    return found


def setting_names() -> dict[str, list[str]]:
    """``SHADOWLINE_X`` -> the settings classes that read it."""
    names: dict[str, list[str]] = {}
    for cls in settings_classes():
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field in cls.model_fields:
            names.setdefault(f"{prefix}{field}".upper(), []).append(cls.__name__)
    return names


@dataclass(frozen=True)
class Command:
    """A ``shadowline`` command (a group that runs on its own counts as one too)."""

    path: str  # "shadowline models approve"
    options: frozenset[str]  # long options, e.g. "--reason"
    is_group: bool


def commands() -> dict[str, Command]:
    """Every command of the ``shadowline`` CLI by its path, read from the Typer app."""
    root = typer.main.get_command(app)
    context = root.make_context("shadowline", [], resilient_parsing=True)
    found: dict[str, Command] = {}

    def walk(command: Any, path: str) -> None:
        options = frozenset(
            name
            for param in command.params
            if param.param_type_name == "option"
            for name in (*param.opts, *param.secondary_opts)
            if name.startswith("--") and name != "--help"
        )
        is_group = hasattr(command, "list_commands")
        if path != "shadowline":
            found[path] = Command(path=path, options=options, is_group=is_group)
        if is_group:
            for name in command.list_commands(context):
                walk(command.get_command(context, name), f"{path} {name}")

    walk(root, "shadowline")
    return found


def runs_alone(command: Command) -> bool:
    """A leaf command, or a group with options of its own (``shadowline models audit``)."""
    return not command.is_group or bool(command.options)
