"""The scorer's FastAPI app, built by :func:`create_app` from settings and a registry.

Design (numbers measured on the 2-core test machine, see the README "Scoring service"):

* Request path.  :class:`service.scorer.Scorer` parses the raw body with orjson, checks it
  with the production model's ``RowCodec``, runs one onnxruntime call (one intra-op thread)
  and returns pre-encoded JSON.  FastAPI declares ``POST /v1/score`` and ``/v1/score/batch``
  (so OpenAPI documents their bodies and responses), but by default
  :class:`service.fastpath.ScorerApp` answers them below FastAPI's middleware stack and
  routing, which cost ~35 us a request around a ~50 us scoring call.
* Shadows and records.  The handler only enqueues the scored request with the rows it encoded
  (:class:`service.dispatcher.ShadowDispatcher`, bounded, shed and counted when full).  A
  thread drains it in batches, runs each sampled shadow on its own executor within a time
  budget (a shadow with production's schema reuses production's encoded rows, stacked in C),
  builds one record per request and hands it to :class:`service.sink.KafkaSink`.  The sink
  frames records to a Kafka producer in a child process: kafka-python's 60-120 us of Python per
  record, in this process, held the GIL the event loop needed (measured per request: 89 us of
  scorer CPU without a sink, 93 us with 3 shadows at 100%, 290-377 us of request-path time with
  the producer in-process, 97-107 us with it in its own process).  Threads suit the shadows:
  onnxruntime releases the GIL and the batched Python around it costs a few us a request,
  while a process would need a second copy of every shadow model and its own hot swap.
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
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from registry import EVENTS_CHANNEL, ModelRegistry, RegistryError
from service.admin import admin_router
from service.dispatcher import ShadowDispatcher
from service.errors import ServiceError
from service.fastpath import FastLane, Handler, ScorerApp
from service.follower import RegistryFollower
from service.http import JSON, RequestMetrics, error_response, json_response, read_body
from service.live import LiveModels
from service.loader import ModelLoader, ModelSource
from service.metrics import ServiceMetrics
from service.models import LoadedModel
from service.producer import ProducerConfig
from service.schemas import ERROR_RESPONSES, BatchResponse, ScoreResponse, request_body
from service.scorer import Scorer
from service.settings import ServiceSettings
from service.sink import KafkaSink, RecordSink


@dataclass
class Components:
    """Everything one scorer process runs, wired together (public for tests and the CLI)."""

    settings: ServiceSettings
    metrics: ServiceMetrics
    live: LiveModels
    scorer: Scorer
    dispatcher: ShadowDispatcher
    sink: RecordSink
    loader: ModelLoader
    follower: RegistryFollower


def build_components(
    settings: ServiceSettings,
    source: ModelSource,
    *,
    collector_registry: CollectorRegistry,
    sink: RecordSink | None = None,
    connect: Callable[[], aioredis.Redis] | None = None,
    events_channel: str = EVENTS_CHANNEL,
) -> Components:
    """Wire the scorer's parts from ``settings`` (nothing is started here)."""
    metrics = ServiceMetrics(collector_registry)
    live = LiveModels()
    if sink is None:
        sink = KafkaSink(
            producer_config(settings), metrics, buffer_records=settings.kafka_buffer_records,
            in_process=not settings.kafka_producer_process,
        )  # fmt: skip
    dispatcher = ShadowDispatcher(
        live, sink.publish, metrics,
        queue_size=settings.shadow_queue_size,
        budget_s=settings.shadow_time_budget_ms / 1000,
        batch_max=settings.shadow_batch_max,
        batch_wait_s=settings.shadow_batch_wait_ms / 1000,
    )  # fmt: skip
    scorer = Scorer(
        live, dispatcher.submit, metrics,
        model_name=settings.model_name, max_batch=settings.max_batch,
    )  # fmt: skip
    loader = ModelLoader(source, live, metrics, name=settings.model_name)
    if connect is None:
        url = settings.redis_url.get_secret_value()

        def connect() -> aioredis.Redis:
            return aioredis.Redis.from_url(url, socket_connect_timeout=2.0)

    follower = RegistryFollower(
        loader, connect, metrics, name=settings.model_name, channel=events_channel,
        interval_s=settings.reconcile_interval_s,
    )  # fmt: skip
    return Components(settings, metrics, live, scorer, dispatcher, sink, loader, follower)


def producer_config(settings: ServiceSettings) -> ProducerConfig:
    """The Kafka producer's settings; half the record buffer may be in flight in it."""
    return ProducerConfig(
        servers=tuple(settings.kafka_servers),
        topic=settings.scores_topic,
        max_in_flight=max(1, settings.kafka_buffer_records - settings.kafka_buffer_records // 2),
        linger_ms=settings.kafka_linger_ms,
        delivery_timeout_ms=settings.kafka_delivery_timeout_ms,
        restart_after_s=settings.kafka_restart_after_s,
    )


def create_app(
    settings: ServiceSettings,
    registry: ModelRegistry,
    *,
    collector_registry: CollectorRegistry | None = None,
    sink: RecordSink | None = None,
    connect: Callable[[], aioredis.Redis] | None = None,
) -> FastAPI:
    """The scorer app.  Its lifespan starts the sink, the dispatcher, a first model load and
    the registry follower, and stops them (sending what is queued) on shutdown."""
    parts = build_components(
        settings, registry, collector_registry=collector_registry or CollectorRegistry(),
        sink=sink, connect=connect,
    )  # fmt: skip

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        parts.sink.start()
        parts.dispatcher.start()
        await parts.follower.reconcile()
        follow = asyncio.create_task(parts.follower.run(), name="registry-follower")
        try:
            yield
        finally:
            follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follow
            await asyncio.to_thread(parts.dispatcher.stop)
            await asyncio.to_thread(parts.sink.close)

    app = ScorerApp(
        # FastAPI's own OpenTelemetry hooks read the environment on every request (~8 us).
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="Shadowline scorer",
        summary="Fraud scoring with built-in shadow mode.",
        lifespan=lifespan,
        default_response_class=_OrjsonResponse,
    )
    app.state.components = parts
    _add_scoring_routes(app, parts)
    _add_health_routes(app, parts)
    app.include_router(
        admin_router(registry, settings.model_name, settings.admin_token, parts.live)
    )

    async def on_error(_: Request, exc: Exception) -> Response:
        return error_response(exc)

    for kind in (ServiceError, RegistryError, redis.RedisError):
        app.add_exception_handler(kind, on_error)
    app.add_middleware(RequestMetrics, metrics=parts.metrics)
    return app


class _OrjsonResponse(Response):
    media_type = JSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _add_scoring_routes(app: ScorerApp, parts: Components) -> None:
    scorer, limit = parts.scorer, parts.settings.max_body_bytes

    async def score(request: Request) -> Response:
        """Score one transaction with the production model."""
        return Response(scorer.score(await read_body(request, limit)), media_type=JSON)

    async def score_batch(request: Request) -> Response:
        """Score up to ``max_batch`` transactions in one call."""
        return Response(scorer.score_batch(await read_body(request, limit)), media_type=JSON)

    app.post(
        "/v1/score", response_model=ScoreResponse, openapi_extra=request_body(),
        responses=ERROR_RESPONSES, tags=["scoring"],
    )(score)  # fmt: skip
    app.post(
        "/v1/score/batch", response_model=BatchResponse,
        openapi_extra=request_body(parts.settings.max_batch),
        responses=ERROR_RESPONSES, tags=["scoring"],
    )(score_batch)  # fmt: skip
    if parts.settings.fast_path:
        routes: dict[str, Handler] = {
            "/v1/score": scorer.score,
            "/v1/score/batch": scorer.score_batch,
        }
        app.lane = FastLane(routes, limit, parts.metrics)


def _describe(model: LoadedModel) -> dict[str, Any]:
    return {"version": model.version, "sha256": model.sha256, "loaded_at": model.loaded_at}


def _add_health_routes(app: FastAPI, parts: Components) -> None:
    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is alive and its event loop answers."""
        return {"status": "alive"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "Not ready."}})
    async def readyz() -> Response:
        """200 once a production model is loaded and warmed.  Reports whether the registry
        (Redis) is reachable, without failing readiness on it: loaded models keep scoring."""
        current = parts.live.current
        production = current.production
        body = {
            "ready": parts.live.warmed,
            "model_name": parts.settings.model_name,
            "revision": current.revision,
            "production": None if production is None else _describe(production),
            "shadows": [
                {"version": slot.model.version, "rate": slot.rate} for slot in current.shadows
            ],
            "registry": {
                "reachable": parts.follower.reachable,
                "error": parts.follower.last_error,
            },
        }
        return json_response(body, 200 if parts.live.warmed else 503)

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics of this process (see the README for the list)."""
        payload = generate_latest(parts.metrics.registry)
        return Response(payload, media_type=CONTENT_TYPE_LATEST)
