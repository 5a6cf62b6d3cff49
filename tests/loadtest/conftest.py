"""A tiny HTTP/1.1 server on 127.0.0.1 for the generator's integration tests.

It runs its own asyncio loop in a thread (the generator runs another loop in the test's
thread, or in spawned processes).  Routes: ``/v1/score`` answers 200, or 422 when the body
holds "not-a-number"; ``/v1/score/batch`` 200; ``/close`` 200 with ``Connection: close``;
``/hang`` never answers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import Callable, Iterator

import pytest

_CLIENTS: set[asyncio.StreamWriter] = set()  # open connections, closed when the server stops
_ACCEPTED = [0]  # connections accepted so far
_SERVED: collections.Counter[int] = collections.Counter()  # requests per connection (1, 2, ...)


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    _CLIENTS.add(writer)
    _ACCEPTED[0] += 1
    number = _ACCEPTED[0]
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *headers = head.decode("latin-1").split("\r\n")
            length = next(
                (
                    int(h.split(":", 1)[1])
                    for h in headers
                    if h.lower().startswith("content-length")
                ),
                0,
            )
            body = await reader.readexactly(length)
            _SERVED[number] += 1
            path = request_line.split(" ")[1]
            if path == "/hang":
                await asyncio.sleep(3600)
            status, extra = "200 OK", ""
            if b"not-a-number" in body:
                status = "422 Unprocessable Entity"
            if path == "/close":
                extra = "Connection: close\r\n"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Length: 2\r\n{extra}\r\n{{}}".encode("latin-1")
            )
            await writer.drain()
            if extra:
                break
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        _CLIENTS.discard(writer)
        writer.close()


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    """Port of the tiny server, started once per module and stopped after it."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, asyncio.Server] = {}

    async def start() -> None:
        holder["server"] = await asyncio.start_server(_handle, "127.0.0.1", 0)
        ready.set()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(5)
    server = holder["server"]
    yield int(server.sockets[0].getsockname()[1])

    async def stop() -> None:
        server.close()
        for writer in list(_CLIENTS):
            writer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2)
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


@pytest.fixture
def accepted_connections() -> Callable[[], int]:
    """How many connections the tiny server has accepted so far."""
    return lambda: _ACCEPTED[0]


@pytest.fixture
def served_since() -> Callable[[int], dict[int, int]]:
    """``served_since(n)``: requests served on each connection accepted after the first
    ``n`` (by number)."""
    return lambda n: {number: count for number, count in _SERVED.items() if number > n}
