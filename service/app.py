"""The scorer's FastAPI app, built by :func:`create_app` from settings and a registry.

Design (numbers measured on the 2-core test machine; docs/scoring.md and docs/shadows.md):

* Request path.  :class:`service.scorer.Scorer` parses the raw body with orjson, checks it
  with the production model's ``RowCodec`` (one pass building the row for a complete numeric
  row), runs one onnxruntime call (one intra-op thread) and returns pre-encoded JSON.  FastAPI
  declares ``POST /v1/score`` and ``/v1/score/batch`` (so OpenAPI documents their bodies and
  responses), but by default :class:`service.fastpath.ScorerApp` answers them below FastAPI's
  middleware stack and routing, which cost ~35 us a request around the scoring call.  Measured
  in-process (thread CPU time), the scoring lane now spends ~13 us a request above a bare ASGI
  app that parses the same row and runs the same model (~50 us before the row shortcut).
* Shadows and records.  The handler only appends the scored transaction to a bounded queue
  (:class:`service.sidecar.Sidecar`; shed and counted when full).  A writer thread pickles
  batches of them to the sidecar process (:mod:`service.sidecar_loop`), which runs the
  sampled shadows one after the other, each on its own executor within a time budget,
  builds one record per transaction and produces it to Kafka.  Threads in this process were
  measured first: the shadows' and kafka-python's Python work held the GIL the event loop
  needed, and production's p99 at half the maximum rate grew 3.6x with 3 shadows
  (docs/benchmarks.md of 2026-11-27 10:57); in the sidecar it runs on the other core, and
  this process spends ~1 us a transaction on it (a pickle of plain tuples).
  Nothing on the event loop waits for a shadow or for Kafka.
* Hot swap.  :class:`service.follower.RegistryFollower` listens to registry events and
  reconciles by revision every ``reconcile_interval_s``; :class:`service.loader.ModelLoader`
  loads and warms new versions in a worker thread and swaps the model set in one assignment.
* Errors.  Domain code raises :class:`service.errors.ServiceError` subclasses; one handler maps
  them to 413/422/503 (and the admin API's registry errors to 404/409/422), never a 500 for a
  client's mistake.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from registry import EVENTS_CHANNEL, ModelRegistry, RegistryError
from registry.connections import async_redis_client, kafka_options
from service.admin import admin_router
from service.auth import AdminGuard
from service.docs_page import add_docs
from service.errors import ServiceError
from service.examples import METRICS_EXAMPLE
from service.fastpath import FastLane, Handler, ScorerApp
from service.follower import RegistryFollower
from service.guard import RollbackTarget
from service.http import (
    JSON,
    NoSniff,
    RequestMetrics,
    error_response,
    json_response,
    read_body,
)
from service.labels import LabelIntake, label_intake, labels_router
from service.lagprobe import lag_probe
from service.live import LiveModels
from service.loader import ModelLoader, ModelSource
from service.metrics import ServiceMetrics
from service.model_cache import ModelCache
from service.models import LoadedModel
from service.openapi import BATCH, DESCRIPTION, SCORE, TAGS, LiveDocument, request_bodies
from service.producer import ProducerConfig
from service.review import review_router
from service.schemas import ERROR_RESPONSES, BatchResponse, Liveness, Readiness, ScoreResponse
from service.scorer import InputLimits, Scorer
from service.settings import ServiceSettings
from service.sidecar import RecordSink, Sidecar
from service.sidecar_loop import SidecarConfig, SpoolConfig
from service.watch import Watch, build_watch

log = logging.getLogger(__name__)

# How long another thread may hold the GIL while the loop's thread waits for it (lifespan).
GIL_SWITCH_INTERVAL_S = 0.001


@dataclass
class Components:
    """Everything one scorer process runs, wired together (public for tests and the CLI)."""

    settings: ServiceSettings
    metrics: ServiceMetrics
    live: LiveModels
    scorer: Scorer
    sink: RecordSink
    loader: ModelLoader
    follower: RegistryFollower
    labels: LabelIntake
    watch: Watch  # drift gauges and the rollback guard


def build_components(
    settings: ServiceSettings,
    source: ModelSource,
    *,
    collector_registry: CollectorRegistry,
    sink: RecordSink | None = None,
    connect: Callable[[], aioredis.Redis] | None = None,
    events_channel: str = EVENTS_CHANNEL,
    guard_target: RollbackTarget | None = None,
) -> Components:
    """Wire the scorer's parts from ``settings`` (nothing is started here)."""
    metrics = ServiceMetrics(collector_registry)
    live = LiveModels()
    cache = ModelCache(Path(settings.model_cache_dir)) if settings.model_cache_dir else None
    loader = ModelLoader(
        source,
        live,
        metrics,
        name=settings.model_name,
        cache=cache,
        retry_s=settings.degraded_retry_s,
    )
    if sink is None:
        sink = Sidecar(
            sidecar_config(settings),
            live,
            metrics,
            queue_size=settings.shadow_queue_size,
            buffer_bytes=settings.kafka_buffer_bytes,
            batch_max=settings.shadow_batch_max,
            batch_wait_s=settings.shadow_batch_wait_ms / 1000,
            in_process=not settings.sidecar_process,
            on_load_failure=loader.shadow_failed,  # it loads the shadows, the scorer does not
        )
    scorer = Scorer(
        live,
        sink.submit,
        metrics,
        model_name=settings.model_name,
        max_batch=settings.max_batch,
        exploration_share=settings.exploration_share,
        limits=input_limits(settings),
    )
    if connect is None:

        def connect() -> aioredis.Redis:
            return async_redis_client(settings)

    follower = RegistryFollower(
        loader,
        connect,
        metrics,
        name=settings.model_name,
        channel=events_channel,
        interval_s=settings.reconcile_interval_s,
    )
    labels = label_intake(settings, metrics)
    watch = build_watch(settings, live, metrics, guard_target, connect)
    return Components(
        settings=settings,
        metrics=metrics,
        live=live,
        scorer=scorer,
        sink=sink,
        loader=loader,
        follower=follower,
        labels=labels,
        watch=watch,
    )


def input_limits(settings: ServiceSettings) -> InputLimits:
    """What one scoring transaction may carry, from the ``SHADOWLINE_MAX_*`` settings."""
    return InputLimits(
        max_transaction_bytes=settings.max_transaction_bytes,
        max_extra_fields=settings.max_extra_fields,
        max_string_chars=settings.max_string_chars,
    )


def sidecar_config(settings: ServiceSettings) -> SidecarConfig:
    """The sidecar's settings: shadows, a Kafka producer that may hold
    ``kafka_buffer_records`` records and half of ``kafka_buffer_bytes`` unacknowledged, and
    the spool (none when ``spool_max_bytes`` is 0)."""
    producer = ProducerConfig(
        servers=tuple(settings.kafka_servers),
        topic=settings.scores_topic,
        max_in_flight=settings.kafka_buffer_records,
        max_in_flight_bytes=settings.kafka_buffer_bytes - settings.kafka_buffer_bytes // 2,
        linger_ms=settings.kafka_linger_ms,
        delivery_timeout_ms=settings.kafka_delivery_timeout_ms,
        restart_after_s=settings.kafka_restart_after_s,
        acks="all" if settings.kafka_acks == "all" else int(settings.kafka_acks),
        client_options=kafka_options(settings),
        client=settings.kafka_client,
    )
    spool = None
    if settings.spool_max_bytes:
        spool = SpoolConfig(
            # Absolute: the sidecar must find its spool whatever the working directory becomes
            # later (an in-process sidecar that outlived its test once lost it to a chdir).
            directory=str(Path(settings.spool_dir).resolve()),
            max_bytes=settings.spool_max_bytes,
            fsync_interval_s=settings.spool_fsync_interval_ms / 1000,
        )
    return SidecarConfig(
        producer,
        budget_s=settings.shadow_time_budget_ms / 1000,
        max_lag_s=settings.shadow_max_lag_ms / 1000,
        niceness=settings.sidecar_niceness,
        shadow_niceness=settings.shadow_niceness,
        spool=spool,
    )


async def stop_task(task: asyncio.Task[None], timeout_s: float = 5.0, again_s: float = 0.1) -> None:
    """Cancel ``task`` and wait until it ends, cancelling it again every ``again_s``.

    Once is not always enough: redis's client can swallow a cancellation that lands as one of
    its read timeouts expires, and the task then goes on as if never cancelled (seen: the
    registry follower kept following after the lifespan had cancelled it, in about one test
    run in three, and the scorer never shut down).  Gives up after ``timeout_s``, logged."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not task.done():
        if asyncio.get_running_loop().time() > deadline:
            log.error(
                "task %s did not stop within %gs; shutting down without it",
                task.get_name(),
                timeout_s,
            )
            return
        task.cancel()
        await asyncio.wait({task}, timeout=again_s)
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s ended with an error", task.get_name(), exc_info=task.exception())


def create_app(
    settings: ServiceSettings,
    registry: ModelRegistry,
    *,
    collector_registry: CollectorRegistry | None = None,
    sink: RecordSink | None = None,
    connect: Callable[[], aioredis.Redis] | None = None,
) -> FastAPI:
    """The scorer app.  Its lifespan starts the sidecar, a first model load and the registry
    follower, and stops them (sending what is queued) on shutdown."""
    parts = build_components(
        settings,
        registry,
        collector_registry=collector_registry or CollectorRegistry(),
        sink=sink,
        connect=connect,
        guard_target=registry,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(parts.sink.start)
        await parts.follower.reconcile()
        # What start-up allocated (FastAPI, pydantic, onnxruntime, the models) lives as long
        # as the process: keep it out of the cyclic collector's full passes.
        gc.collect()
        gc.freeze()
        # Work in another thread of this process (a /metrics render, a model load's Python,
        # the hand-over to the sidecar) holds the GIL until the interpreter makes it let go,
        # 5 ms by default: the loop waits that long behind it.  At 1 ms a scrape rendered in
        # a thread held the loop past 2 ms 3 times in 21 scrapes, against 20 at 5 ms and 22
        # rendered on the loop (measured at rest on the 2-core bench machine).
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        follow = asyncio.create_task(parts.follower.run(), name="registry-follower")
        watching = asyncio.create_task(parts.watch.run(), name="watch")
        try:
            async with lag_probe(settings, parts.metrics.registry):
                yield
        finally:
            for task in (follow, watching):
                await stop_task(task)
            # Records first: a model load still under way must not delay their flush.
            await asyncio.to_thread(parts.sink.close)
            await asyncio.to_thread(parts.labels.close)
            await asyncio.to_thread(parts.follower.close)
            sys.setswitchinterval(switch_interval)

    app = ScorerApp(
        # FastAPI's own OpenTelemetry hooks read the environment on every request (~8 us).
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="Shadowline scorer",
        summary="Fraud scoring with built-in shadow mode.",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        default_response_class=_OrjsonResponse,
        docs_url=None,  # served by add_docs, without a CDN
        redoc_url=None,
    )
    app.state.components = parts
    _add_scoring_routes(app, parts)
    _add_health_routes(app, parts)
    app.include_router(
        admin_router(registry, settings.model_name, settings.admin_token, parts.live)
    )
    app.include_router(review_router())
    add_docs(app)
    app.include_router(labels_router(parts.labels, settings.labels_token, settings.max_body_bytes))

    async def on_error(_: Request, exc: Exception) -> Response:
        return error_response(exc)

    # RequestValidationError too: FastAPI's default handler echoes the input with json.dumps,
    # which raises on NaN or 1e999 (a 500 for a client's mistake).  HTTPException (404, 405,
    # 400) so that every error body has the one documented shape.
    kinds = (ServiceError, RegistryError, RequestValidationError, redis.RedisError, HTTPException)
    for kind in kinds:
        app.add_exception_handler(kind, on_error)
    # Added first, so it runs inside RequestMetrics (its 401s are counted) and before routing.
    app.add_middleware(
        AdminGuard, token=settings.admin_token, max_body_bytes=settings.admin_max_body_bytes
    )
    app.add_middleware(NoSniff)
    app.add_middleware(RequestMetrics, metrics=parts.metrics)
    return app


class _OrjsonResponse(JSONResponse):
    """JSON by orjson; a JSONResponse, so FastAPI documents each route's response model."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _add_scoring_routes(app: ScorerApp, parts: Components) -> None:
    scorer, settings = parts.scorer, parts.settings
    single = settings.max_transaction_bytes
    batch = min(settings.max_body_bytes, settings.max_batch * settings.max_transaction_bytes)

    async def score(request: Request) -> Response:
        """Score one transaction with the production model."""
        return Response(scorer.score(await read_body(request, single)), media_type=JSON)

    async def score_batch(request: Request) -> Response:
        """Score up to ``max_batch`` transactions in one call."""
        return Response(scorer.score_batch(await read_body(request, batch)), media_type=JSON)

    limits = input_limits(settings)
    bodies = request_bodies(None, limits, settings.max_batch)
    app.post(
        SCORE,
        response_model=ScoreResponse,
        openapi_extra={"requestBody": bodies[SCORE]},
        responses=ERROR_RESPONSES,
        tags=["scoring"],
        summary="Score one transaction",
    )(score)
    app.post(
        BATCH,
        response_model=BatchResponse,
        openapi_extra={"requestBody": bodies[BATCH]},
        responses=ERROR_RESPONSES,
        tags=["scoring"],
        summary="Score a batch of transactions",
    )(score_batch)
    app.document = LiveDocument(parts.live, limits, settings.max_batch)
    if parts.settings.fast_path:
        routes: dict[str, tuple[Handler, int]] = {
            "/v1/score": (scorer.score, single),
            "/v1/score/batch": (scorer.score_batch, batch),
        }
        app.lane = FastLane(routes, parts.metrics)


def _describe(model: LoadedModel) -> dict[str, Any]:
    return {"version": model.version, "sha256": model.sha256, "loaded_at": model.loaded_at}


def _add_health_routes(app: FastAPI, parts: Components) -> None:
    @app.get("/healthz", tags=["health"], summary="Liveness")
    async def healthz() -> Liveness:
        """The process is alive and its event loop answers."""
        return Liveness(status="alive")

    @app.get(
        "/readyz",
        tags=["health"],
        response_model=Readiness,
        summary="Readiness",
        responses={503: {"model": Readiness, "description": "No production model is loaded."}},
    )
    async def readyz() -> Response:
        """200 once a production model is loaded and warmed.  Reports whether the registry
        (Redis) is reachable and whether this scorer is degraded (serving a last-known-good
        model), without failing readiness on either: loaded models keep scoring."""
        current = parts.live.current
        production = current.production
        loaded = parts.sink.shadows_loaded()
        body = {
            "ready": parts.live.warmed,
            "model_name": parts.settings.model_name,
            "revision": current.revision,
            "production": None if production is None else _describe(production),
            "shadows": [
                {
                    "version": slot.model.version,
                    "rate": slot.rate,
                    "loaded": slot.model.version in loaded,
                }
                for slot in current.shadows
            ],
            # The scores topic's broker as the sidecar last saw it, and what waits in the
            # spool; like the registry's state, it never fails readiness.
            "broker": parts.sink.broker_state(),
            "registry": {
                "reachable": parts.follower.reachable,
                "error": parts.follower.last_error,
            },
            # Serving a last-known-good model instead of the registry's production: still
            # ready (it scores), but the fleet and the registry disagree (service.loader).
            "degraded": None if current.degraded is None else current.degraded.as_dict(),
            "model_cache_error": parts.loader.cache_error,
        }
        return json_response(body, 200 if parts.live.warmed else 503)

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=Response,
        summary="Prometheus metrics",
        responses={
            200: {
                "content": {
                    "text/plain": {"schema": {"type": "string"}, "example": METRICS_EXAMPLE}
                }
            }
        },
    )
    async def metrics() -> Response:
        """Prometheus metrics of this process, in the text exposition format
        (docs/operations.md lists them)."""
        # Rendered off the loop: some 430 lines took 3-7 ms of the loop's time a scrape with
        # prometheus_client's renderer (measured on the 2-core bench machine), every request
        # in flight waiting on it.  The scorer's own renderer takes about half as long.
        payload = await asyncio.to_thread(parts.metrics.render)
        return Response(payload, media_type=CONTENT_TYPE_LATEST)
