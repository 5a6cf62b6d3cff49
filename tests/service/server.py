"""A real uvicorn server on a free port, in a thread of the test process."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import httpx
import uvicorn
from fastapi import FastAPI

from shadowline.stack import free_port


@contextlib.contextmanager
def serving(app: FastAPI, timeout_s: float = 20.0) -> Iterator[httpx.Client]:
    """Run ``app`` (lifespan included) until the block ends; yields a client bound to it."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="asyncio",
        http="h11",
        access_log=False,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout_s)
        if thread.is_alive():  # left running, its sidecar would hang the test process's exit
            raise RuntimeError(f"the test server did not stop within {timeout_s:g}s")
