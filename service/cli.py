"""`shadowline` subcommands of the service package (mounted by shadowline.cli).

Keep module-level imports light: `shadowline stack status` imports this module too.
"""

from __future__ import annotations

from typing import Annotated

import typer

from registry.cli_kit import EXIT_FAILED, fail, guard
from registry.config import load_settings
from service.settings import ServiceSettings

app = typer.Typer(no_args_is_help=True)


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (SHADOWLINE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (SHADOWLINE_PORT).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (SHADOWLINE_WORKERS).")
    ] = None,
) -> None:
    """Run the scorer: uvicorn with uvloop and httptools (each response in one write:
    service/http_protocol.py), access log off unless SHADOWLINE_ACCESS_LOG=true.  Each worker
    is a process with its own models, metrics and Kafka producer process."""
    overrides = {"host": host, "port": port, "workers": workers}
    with guard():
        settings = load_settings(
            ServiceSettings, **{k: v for k, v in overrides.items() if v is not None}
        )
    if settings.workers > 1:
        # Measured (docs/operations.md): prometheus_client's multiprocess mode would cost 2.5x
        # the request path's metric work and break the function gauges (model age) and label
        # removal; one worker per process, scaled with replicas, keeps metrics exact.
        typer.secho(
            f"warning: SHADOWLINE_WORKERS={settings.workers}: each worker has its own models, "
            "metrics and rollback guard, and a scrape of /metrics reaches one of them; run one "
            "worker per process and add replicas behind the load balancer "
            "(docs/operations.md)",
            fg=typer.colors.YELLOW,
            err=True,
        )
    import uvicorn

    from service.http_protocol import OneWriteHttpToolsProtocol
    from service.main import build_app

    target = build_app(settings) if settings.workers == 1 else "service.main:app_from_environment"
    # Several workers need an import string and a factory: each worker process reads the
    # settings again and has its own models, metrics and Kafka producer process.
    try:
        uvicorn.run(
            target,
            factory=settings.workers > 1,
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            loop="uvloop",
            http=OneWriteHttpToolsProtocol,
            access_log=settings.access_log,
            log_level=settings.log_level,
            # The scorer never looks at client addresses; parsing X-Forwarded-For costs per
            # request.
            proxy_headers=False,
            timeout_graceful_shutdown=10,
        )
    except SystemExit as exc:
        # uvicorn logs why (address in use, unknown host, start-up failed) and exits with 3.
        if exc.code in (0, None):
            raise
        where = f"{settings.host}:{settings.port}"
        raise fail(
            f"the scorer could not start on {where} (see the log above)",
            exc.code if isinstance(exc.code, int) else EXIT_FAILED,
        ) from None
