"""``shadowline archive`` and ``shadowline replay VERSION`` (mounted by shadowline.cli).

``archive`` runs the topic archiver (:mod:`retrain.evidence.archiver`): continuously, serving
its metrics on ``SHADOWLINE_ARCHIVE_METRICS_PORT`` until SIGTERM or SIGINT, or with
``--once`` until every partition is caught up.  ``replay`` scores archived traffic with a
registered candidate (:mod:`retrain.evidence.replay`).  Progress goes to stderr; the summary
to stdout (``--json`` for machines).  Errors print one line ``error: ...`` and exit 1 (2 for
bad settings).  Module-level imports stay light: every ``shadowline`` command imports this.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from registry.config import SettingsError, load_settings

if TYPE_CHECKING:
    from retrain.evidence.archiver import ArchiveProgress

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _exit(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    import redis

    from registry.errors import RegistryError
    from retrain.errors import RetrainError

    try:
        yield
    except SettingsError as exc:
        raise _exit(" ".join(str(exc).split()), 2) from None
    except (RetrainError, RegistryError) as exc:
        raise _exit(str(exc)) from None
    except redis.RedisError as exc:
        raise _exit(f"Redis: {exc}") from None


def _progress(progress: ArchiveProgress) -> None:
    typer.echo(f"archive: {progress.line()}", err=True)


def archive_command(
    once: Annotated[
        bool, typer.Option("--once", help="Archive what is there, then exit (no metrics port).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Archive the scores and labels topics to day-partitioned Parquet (docs/archive.md)."""
    import signal
    import threading
    from pathlib import Path

    from prometheus_client import CollectorRegistry

    from retrain.evidence.archive_health import serve
    from retrain.evidence.archive_metrics import ArchiveMetrics
    from retrain.evidence.archiver import Archiver, group_consumer
    from retrain.settings import ArchiveSettings

    with _errors():
        settings = load_settings(ArchiveSettings)
        topics = {settings.scores_topic: "scores", settings.labels_topic: "labels"}
        metrics = ArchiveMetrics(CollectorRegistry(), tuple(topics))
        consumer = group_consumer(settings)
        stop = threading.Event()
        server = None
        try:
            archiver = Archiver(
                Path(settings.archive_dir),
                consumer,
                topics,
                metrics=metrics,
                flush_records=settings.archive_flush_records,
                flush_interval_s=settings.archive_flush_interval_s,
                progress_s=settings.archive_progress_s,
                on_progress=_progress,
            )
            if not once:
                signal.signal(signal.SIGTERM, lambda *_: stop.set())
                signal.signal(signal.SIGINT, lambda *_: stop.set())
                server = serve(settings.archive_metrics_port, metrics, settings.archive_stall_s)
                typer.echo(
                    f"archive: {', '.join(topics)} -> {settings.archive_dir}, metrics and "
                    f"/healthz on :{settings.archive_metrics_port}",
                    err=True,
                )
            progress = archiver.run(once=once, stop=stop.is_set)
        finally:
            consumer.close()
            if server is not None:
                server.shutdown()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "archived": dict(progress.archived),
                    "refused": dict(progress.refused),
                    "skipped": dict(progress.skipped),
                    "files": progress.files,
                    "archive": settings.archive_dir,
                }
            )
        )
    else:
        typer.echo(f"{progress.line()} -> {settings.archive_dir}")


def replay_command(
    version: Annotated[str, typer.Argument(help="The registered version to score, e.g. v7.")],
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Model name (default SHADOWLINE_MODEL_NAME).")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Replay transactions scored from this time (UTC).")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(help="... up to (not including) this time (UTC).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Score archived transactions with a registered candidate, off the serving path."""
    from pathlib import Path

    from registry.config import SharedSettings
    from registry.connections import model_registry
    from retrain.evidence.replay import replay, utc

    with _errors():
        settings = load_settings(SharedSettings)
        registry = model_registry(settings)
        try:
            model = name or settings.model_name
            result = replay(
                registry,
                model,
                version,
                Path(settings.archive_dir),
                since=utc(since),
                until=utc(until),
                on_progress=lambda line: typer.echo(f"replay: {line}", err=True),
            )
        finally:
            registry.close()
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
    else:
        typer.echo(result.line())
