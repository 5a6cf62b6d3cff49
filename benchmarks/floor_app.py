"""The scoring floor: the least a server can do and still score a request like the scorer.

A bare ASGI app (no framework): read the body, parse the scorer's JSON body
(``{"transaction_id": ..., "features": {...}}``) with orjson, put the 30 features in an array,
run the benchmark model with onnxruntime on one thread, answer with orjson.  No validation, no
metrics, no records: every scorer figure is also reported as a ratio to this server's, measured
in the same run, so the distance to what the hardware allows is visible.

Run: ``FLOOR_MODEL_PATH=model.onnx uvicorn benchmarks.floor_app:create_app --factory``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson

from benchmarks.model import FIELD_NAMES

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]
JSON = [(b"content-type", b"application/json")]


def one_thread_session(path: str) -> ort.InferenceSession:
    """The model on onnxruntime with one intra-op and one inter-op thread."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def create_app() -> App:
    """The app, with the model path from ``FLOOR_MODEL_PATH`` (a benchmark script's knob)."""
    session = one_thread_session(os.environ["FLOOR_MODEL_PATH"])
    run = session.run

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan: nothing to set up
            return
        if scope["method"] == "GET":  # the bench's readiness poll
            await send({"type": "http.response.start", "status": 200, "headers": JSON})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = orjson.loads(b"".join(chunks))
        features = body["features"]
        row = np.array([[features[name] for name in FIELD_NAMES]], dtype=np.float32)
        score = float(run(["probability"], {"numeric": row})[0][0][0])
        out = orjson.dumps({"transaction_id": body["transaction_id"], "score": score})
        headers = [*JSON, (b"content-length", str(len(out)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": out})

    return app
