"""``shadowline``: the one command.  Each package mounts its own Typer app here.

Each package's ``cli`` module keeps its module-level imports light (heavy libraries are
imported inside the commands), so ``shadowline stack status`` does not load onnxruntime or
training libraries, and the scorer image, which has no training libraries, can still run
every command but ``retrain``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from loadtest import cli as loadtest_cli
from registry import cli as registry_cli
from registry.config import SettingsError, load_settings
from retrain import cli as retrain_cli
from retrain.evidence import archive_cli
from retrain.evidence import cli as evidence_cli
from service import cli as service_cli
from shadowline.settings import STATE_DIR, StackSettings
from shadowline.stack import LocalStack, StackError

app = typer.Typer(help="Shadowline: fraud scoring with built-in shadow mode.", no_args_is_help=True)
stack_app = typer.Typer(
    help="The local stack: Redis and a Kafka-protocol broker.", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")
app.add_typer(
    registry_cli.app, name="models", help="The model registry: register, shadow, promote."
)
app.add_typer(
    retrain_cli.app, name="retrain", help="The retrain pipeline and its scheduled worker."
)
app.add_typer(loadtest_cli.app, name="loadtest", help="Open-loop HTTP load tests.")
app.command("analyze")(evidence_cli.analyze_command)
app.command("archive")(archive_cli.archive_command)
app.command("replay")(archive_cli.replay_command)
app.add_typer(
    evidence_cli.labels_app, name="labels", help="Fraud labels: send a file to the labels topic."
)
# The scorer mounts its commands (`serve`) at the top level.
app.registered_commands.extend(service_cli.app.registered_commands)

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _stack_settings() -> StackSettings:
    try:
        return load_settings(StackSettings)
    except SettingsError as exc:
        raise _fail(str(exc), code=2) from None


def _local_stack(settings: StackSettings) -> LocalStack:
    return LocalStack(Path(STATE_DIR), redis_server=settings.redis_server_bin)


@stack_app.command("up")
def stack_up(as_json: JsonFlag = False) -> None:
    """Start Redis and the broker on 127.0.0.1, wait until both answer, record their addresses."""
    settings = _stack_settings()
    stack = _local_stack(settings)
    try:
        components = stack.up(
            redis_port=settings.redis_port,
            kafka_port=settings.kafka_port,
            topics=[settings.scores_topic, settings.labels_topic],
            timeout_s=settings.stack_timeout_s,
        )
    except StackError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(
            json.dumps([{"name": c.name, "address": c.address, "pid": c.pid} for c in components])
        )
        return
    for comp in components:
        typer.echo(f"{comp.name:6} {comp.address:22} pid {comp.pid}  log {comp.log}")
    typer.echo(f"addresses recorded in {stack.env_path}")


@stack_app.command("status")
def stack_status(as_json: JsonFlag = False) -> None:
    """Report whether each component runs and answers a real request.  Exit 1 if not healthy."""
    stack = _local_stack(_stack_settings())
    try:
        health = stack.status()
    except StackError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {"name": h.name, "address": h.address, "healthy": h.healthy, "detail": h.detail}
                    for h in health
                ]
            )
        )
    elif not health:
        typer.echo("the local stack is not running (start it with 'shadowline stack up')")
    for h in [] if as_json else health:
        mark = "healthy" if h.healthy else "UNHEALTHY"
        typer.echo(f"{h.name:6} {h.address:22} {mark:9}  {h.detail}")
    if not health or not all(h.healthy for h in health):
        raise typer.Exit(1)


@stack_app.command("down")
def stack_down() -> None:
    """Stop every component the stack started and forget their addresses."""
    stack = _local_stack(_stack_settings())
    try:
        stopped = stack.down()
    except StackError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command("demo")
def demo() -> None:
    """Start the stack, train and promote a model, shadow a challenger, score, read the records."""
    from shadowline.demo import DemoError, run_demo  # imports Kafka client code: only here

    stack_up(as_json=False)
    stack_status(as_json=False)
    try:
        run_demo(typer.echo)
    except (DemoError, SettingsError) as exc:
        raise _fail(str(exc)) from None


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        sys.exit(130)
