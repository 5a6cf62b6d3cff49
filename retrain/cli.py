"""`shadowline retrain ...`: run the pipeline once, run one step, run the scheduled worker.

Keep module-level imports light: `shadowline stack status` imports this module too (the
scorer image has no training libraries), so everything heavy is imported inside commands.

Exit codes: 0 the run succeeded (or was skipped as identical), 3 the candidate was rejected
by a gate, 1 the run failed (one line ``error: ...`` on stderr), 2 bad settings.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from retrain.rollout import Rollout
    from retrain.runner import Runner, RunResult
    from retrain.settings import RetrainSettings

app = typer.Typer(no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _settings(**overrides: Any) -> RetrainSettings:
    from registry.config import SettingsError, load_settings
    from retrain.settings import RetrainSettings

    try:
        return load_settings(RetrainSettings, **overrides)
    except SettingsError as exc:
        raise _fail(str(exc), code=2) from None


def _progress(step: str, status: str, seconds: float) -> None:
    """Live step lines on an interactive terminal; silent in logs and pipes."""
    if status == "start":
        typer.echo(f"  {step:<9} ...", err=True, nl=False)
    else:
        typer.echo(f"\r  {step:<9} {status:<6} {seconds:6.2f}s", err=True)


def build_runner(settings: RetrainSettings, *, interactive: bool = False) -> Runner:
    """The runner wired to Redis, the model registry and a fresh metrics registry."""
    from prometheus_client import CollectorRegistry

    from registry.connections import redis_client
    from retrain.metrics import RetrainMetrics
    from retrain.runner import Runner
    from retrain.store import RegistryStore

    client = redis_client(settings)
    return Runner(
        settings,
        client=client,
        store=RegistryStore.connect(client, settings),
        metrics=RetrainMetrics(CollectorRegistry()),
        progress=_progress if interactive else None,
    )


def _result_line(result: RunResult) -> str:
    ran = sum(1 for s in result.steps if s.status == "ran")
    reused = [s.name for s in result.steps if s.status == "reused"]
    redid = f", reused {', '.join(reused)}" if reused else ""
    return f"{result.outcome}: {result.reason} (run {result.run_id}, {ran} steps ran{redid})"


def _report(result: RunResult, as_json: bool) -> None:
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "run_id": result.run_id,
                    "outcome": result.outcome,
                    "reason": result.reason,
                    "model_version": result.model_version,
                    "folder": str(result.folder),
                    "steps": [
                        {"step": s.name, "status": s.status, "seconds": round(s.seconds, 3)}
                        for s in result.steps
                    ],
                }
            )
        )
    if result.outcome == "failed":
        raise _fail(f"run {result.run_id} failed: {result.reason}", result.exit_code)
    if not as_json:
        typer.echo(_result_line(result))
    raise typer.Exit(result.exit_code)


@app.command("run")
def run(
    as_of: Annotated[
        datetime | None, typer.Option("--as-of", help="Train on data known at this time (UTC).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Stop after this step.")] = None,
    resume: Annotated[str | None, typer.Option(help="Resume this run id.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run the pipeline once: ingest ... register, shadow.  Exit 0, 3 (rejected) or 1."""
    import redis

    from retrain.errors import RetrainError

    settings = _settings()
    runner = build_runner(settings, interactive=sys.stderr.isatty() and not as_json)
    try:
        result = runner.run(as_of=as_of, resume=resume, until=until)
    except RetrainError as exc:
        raise _fail(str(exc)) from None
    except redis.RedisError as exc:
        raise _fail(f"cannot use Redis: {type(exc).__name__}: {exc}") from None
    _report(result, as_json)


@app.command("step")
def run_step(
    name: Annotated[str, typer.Argument(help="Step name, e.g. features.")],
    run_id: Annotated[str, typer.Option("--run", help="The run whose folder to use.")],
) -> None:
    """Re-run one step of an existing run (its upstream steps must have run)."""
    from retrain.errors import RetrainError

    runner = build_runner(_settings())
    try:
        report = runner.step(run_id, name)
    except RetrainError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"{name}: {report.status} in {report.seconds:.2f}s: {json.dumps(report.summary)}")


@app.command("runs")
def runs(count: Annotated[int, typer.Option(min=1)] = 10, as_json: JsonFlag = False) -> None:
    """The latest runs, newest first: outcome, reason, steps."""
    from dataclasses import asdict

    from registry.connections import redis_client
    from retrain.records import RunStore

    records = RunStore(redis_client(_settings())).recent(count)
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in records]))
        return
    for r in records:
        steps = len(r.steps)
        typer.echo(f"{r.run_id}  {r.outcome:<9} {steps:2} steps  {r.reason}")


@app.command("worker")
def worker(
    once: Annotated[bool, typer.Option("--once", help="Run what is due, then exit.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Health check: exit 0 if alive.")] = False,
) -> None:
    """The scheduled worker (settings.schedule, weekly by default); serves metrics."""
    from retrain.records import RunStore
    from retrain.worker import Worker, check_health

    settings = _settings()
    if check:  # the Docker HEALTHCHECK: no training libraries needed, just the health key
        from registry.connections import redis_client

        client = redis_client(settings)
        healthy, line = check_health(RunStore(client))
        client.close()
        typer.echo(line)
        raise typer.Exit(0 if healthy else 1)
    runner = build_runner(settings)
    store = RunStore(runner.runs.client)
    service = Worker(
        runner, store, schedule=settings.schedule, health_ttl_s=settings.health_ttl_s,
        rollout=_rollout(settings, runner), rollout_interval_s=settings.rollout_interval_s,
    )  # fmt: skip
    if once:
        results = service.drain()
        for result in results:
            typer.echo(_result_line(result))
        if not results:
            typer.echo("nothing due")
        if "rollout" in service.last:
            typer.echo(f"roll-out: {service.last['rollout']}")
        failed = [r for r in results if r.outcome == "failed"]
        if failed:
            raise _fail(f"run {failed[0].run_id} failed: {failed[0].reason}")
        return
    _serve(service, runner, settings.metrics_port)  # pragma: no cover - runs until signalled


def _rollout(settings: RetrainSettings, runner: Runner) -> Rollout | None:
    """The worker's roll-out (None when SHADOWLINE_ROLLOUT is off)."""
    if not settings.rollout:
        return None
    from registry import ModelRegistry, artifact_store
    from retrain.rollout import Rollout

    return Rollout(
        ModelRegistry(runner.runs.client, artifact_store(settings)), runner.metrics,
        name=settings.model_name, window=settings.rollout_window,
        allow_forced=settings.rollout_forced,
    )  # fmt: skip


def _serve(service: Any, runner: Runner, port: int) -> None:  # pragma: no cover - long-running
    import logging
    import signal
    import threading

    from retrain.metrics import serve_metrics

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = serve_metrics(runner.metrics, port)
    typer.echo(f"retrain worker: schedule {service.schedule!r}, metrics on :{port}", err=True)
    try:
        service.serve(stop)
    finally:
        server.shutdown()


@app.command("staleness")
def staleness(
    months: Annotated[int, typer.Option(min=1, max=24)] = 4,
    rows_per_week: Annotated[int, typer.Option(min=1000)] = 25_000,
    as_json: JsonFlag = False,
) -> None:
    """Simulate time: how much a model that is never retrained loses per month."""
    from retrain.staleness import format_table, measure

    settings = _settings()
    table = measure(settings, months=months, rows_per_week=rows_per_week)
    typer.echo(json.dumps(table) if as_json else format_table(table))
