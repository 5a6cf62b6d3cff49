"""The archiver's HTTP port: ``/metrics`` for Prometheus and ``/healthz`` for probes.

The archiver is a loop: poll the broker, buffer, write Parquet, commit.  A process that is up
but whose loop is stuck (a hung write to the volume or the object store, a wedged client)
archives nothing while Prometheus still scrapes it, and the lag alert only fires after half
an hour, and only while records keep coming.  ``/healthz`` answers 200 while the loop has
polled within ``stall_s`` (and during the first ``stall_s`` after start, while it joins its
consumer group), else 503 with the age of the last poll, so Kubernetes restarts it.  Every
other path is the metrics exposition, as before.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from retrain.evidence.archive_metrics import ArchiveMetrics

StartResponse = Callable[..., Any]


def health(
    metrics: ArchiveMetrics, stall_s: float, started: float, now: float
) -> tuple[int, dict[str, Any]]:
    """The status and body of ``/healthz`` at ``now`` (``time.monotonic`` readings)."""
    polled = metrics.polled_at
    if polled is None:
        if now - started <= stall_s:
            return 200, {"status": "starting", "since_start_s": round(now - started, 1)}
        return 503, {
            "status": "stalled",
            "reason": f"no poll of the broker in the {stall_s:g}s since the archiver started",
        }
    age = now - polled
    if age <= stall_s:
        return 200, {"status": "ok", "last_poll_age_s": round(age, 1)}
    return 503, {
        "status": "stalled",
        "reason": f"the archiver's loop last polled the broker {age:.0f}s ago (limit {stall_s:g}s)",
        "last_poll_age_s": round(age, 1),
    }


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds: no access log on stderr."""


def serve(
    port: int,
    metrics: ArchiveMetrics,
    stall_s: float,
    *,
    host: str = "0.0.0.0",  # as before: the pod's port
) -> WSGIServer:
    """Serve ``/healthz`` and the metrics on ``port`` from a daemon thread; call
    ``shutdown()`` on the returned server to stop."""
    started = time.monotonic()
    exposition = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/healthz":
            return exposition(environ, start_response)  # type: ignore[no-any-return]
        status, body = health(metrics, stall_s, started, time.monotonic())
        payload = json.dumps(body).encode()
        reason = "OK" if status == 200 else "Service Unavailable"
        start_response(
            f"{status} {reason}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    server = make_server(host, port, app, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="archive-health", daemon=True).start()
    return server
