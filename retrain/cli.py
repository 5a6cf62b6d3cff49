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

from registry.cli_kit import CommandFailed, JsonFlag, commands, fail
from retrain.errors import RetrainError

if TYPE_CHECKING:
    from retrain.rollout import Rollout
    from retrain.runner import Runner, RunResult
    from retrain.scheduled_analysis import ScheduledAnalysis
    from retrain.settings import RetrainSettings

app = typer.Typer(no_args_is_help=True)
command = commands(app, RetrainError)


def _settings(**overrides: Any) -> RetrainSettings:
    from registry.config import load_settings
    from retrain.settings import RetrainSettings

    return load_settings(RetrainSettings, **overrides)


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
        raise fail(f"run {result.run_id} failed: {result.reason}", result.exit_code)
    if not as_json:
        typer.echo(_result_line(result))
    raise typer.Exit(result.exit_code)


@command("run")
def run(
    as_of: Annotated[
        datetime | None, typer.Option("--as-of", help="Train on data known at this time (UTC).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Stop after this step.")] = None,
    resume: Annotated[str | None, typer.Option(help="Resume this run id.")] = None,
    control: Annotated[
        bool,
        typer.Option(
            "--control",
            help="Retrain production's own recipe (window, data, hyper-parameters) with "
            "another seed and shadow it as production's control: the noise floor.",
        ),
    ] = False,
    seed: Annotated[
        int | None,
        typer.Option(min=0, help="The control's training seed (default: production's + 1)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run the pipeline once: ingest ... register, shadow.  Exit 0, 3 (rejected) or 1."""
    import redis

    if seed is not None and not control:
        raise CommandFailed(
            "--seed applies to --control runs (SHADOWLINE_TRAINING_SEED sets a run's seed)", 2
        )
    settings = _settings()
    runner = build_runner(settings, interactive=sys.stderr.isatty() and not as_json)
    try:
        result = runner.run(as_of=as_of, resume=resume, until=until, control=control, seed=seed)
    except redis.RedisError as exc:  # named with its type: a run can fail on Redis midway
        raise CommandFailed(f"cannot use Redis: {type(exc).__name__}: {exc}") from None
    _report(result, as_json)


@command("step")
def run_step(
    name: Annotated[str, typer.Argument(help="Step name, e.g. features.")],
    run_id: Annotated[str, typer.Option("--run", help="The run whose folder to use.")],
) -> None:
    """Re-run one step of an existing run (its upstream steps must have run)."""
    runner = build_runner(_settings())
    report = runner.step(run_id, name)
    typer.echo(f"{name}: {report.status} in {report.seconds:.2f}s: {json.dumps(report.summary)}")


@command("runs")
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


@command("worker")
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
        runner,
        store,
        schedule=settings.schedule,
        health_ttl_s=settings.health_ttl_s,
        analysis=_analysis(settings, runner),
        rollout=_rollout(settings, runner),
        rollout_interval_s=settings.rollout_interval_s,
    )
    if once:
        try:
            results = service.drain()
        finally:
            runner.runs.client.close()  # --once exits: nothing may be left open
        for analysed in service.analysed:
            ref = f"{settings.model_name}:{analysed.version}"
            state = "analysed" if analysed.recorded else "analysis failed for"
            typer.echo(f"{state} {ref}: {analysed.detail}")
        for result in results:
            typer.echo(_result_line(result))
        if not results and not service.analysed:
            typer.echo("nothing due")
        if "rollout" in service.last:
            typer.echo(f"roll-out: {service.last['rollout']}")
        failed = [r for r in results if r.outcome == "failed"]
        if failed:
            raise CommandFailed(f"run {failed[0].run_id} failed: {failed[0].reason}")
        broken = [a for a in service.analysed if not a.recorded]
        if broken:  # an external cron must see it: --once has no metrics to count it in
            raise CommandFailed(f"analysis of {settings.model_name}:{broken[0].version} failed")
        return
    _serve(service, runner, settings.metrics_port)  # pragma: no cover - runs until signalled


def _analysis(settings: RetrainSettings, runner: Runner) -> ScheduledAnalysis:
    """The worker's scheduled shadow analysis, on the worker's Redis and metrics."""
    from registry import ModelRegistry, artifact_store
    from registry.connections import approval_policy
    from retrain.scheduled_analysis import ScheduledAnalysis

    # On the runner's Redis client: one connection pool for the worker, closed with it.
    registry = ModelRegistry(
        runner.runs.client, artifact_store(settings), policy=approval_policy(settings)
    )
    return ScheduledAnalysis(settings, registry, runner.metrics, client=runner.runs.client)


def _rollout(settings: RetrainSettings, runner: Runner) -> Rollout | None:
    """The worker's roll-out (None when SHADOWLINE_ROLLOUT is off)."""
    if not settings.rollout:
        return None
    from registry import ModelRegistry, artifact_store
    from retrain.rollout import Rollout

    return Rollout(
        ModelRegistry(runner.runs.client, artifact_store(settings)),
        runner.metrics,
        name=settings.model_name,
        window=settings.rollout_window,
        allow_forced=settings.rollout_forced,
    )


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


@command("staleness")
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
