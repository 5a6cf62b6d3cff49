"""The scorer's HTTP protocol sends each response's head with its body, never alone.

A real uvicorn server (uvloop, the protocol the scorer runs) in a thread, a small ASGI app
whose responses the test controls, and raw sockets that see exactly what left the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from service.http_protocol import OneWriteHttpToolsProtocol
from shadowline.stack import free_port

HOST = "127.0.0.1"
GATE = threading.Event()  # the gated response's body waits for it


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    answer = b"echo:" + body if path == "/echo" else b"hello"
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(answer))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if path == "/fail":
        raise RuntimeError("the app fails after starting its response")
    if path == "/gated":  # the test's thread sets the gate: wait for it off this loop
        await asyncio.to_thread(GATE.wait, 10.0)
    await send({"type": "http.response.body", "body": answer})


@contextlib.contextmanager
def _server(http: Any) -> Iterator[int]:
    port = free_port()
    config = uvicorn.Config(
        _app, host=HOST, port=port, loop="uvloop", http=http, lifespan="off", log_level="critical"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10.0
    while not server.started:
        assert thread.is_alive(), "the server stopped"
        assert time.monotonic() < deadline, "the server did not start within 10 s"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10.0)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=5.0)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _received_within(sock: socket.socket, seconds: float) -> bytes:
    """What arrives on ``sock`` within ``seconds`` (b"" when the server closed it)."""
    sock.settimeout(seconds)
    try:
        return sock.recv(65536)
    except TimeoutError:
        return b"(nothing)"


def _response(sock: socket.socket) -> bytes:
    """One whole response with a body (its Content-Length read from its head)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return data


@pytest.fixture
def port() -> Iterator[int]:
    GATE.clear()
    with _server(OneWriteHttpToolsProtocol) as port:
        yield port
    GATE.set()


@pytest.mark.parametrize("http", ["httptools", OneWriteHttpToolsProtocol])
def test_a_head_leaves_only_with_its_body(http: Any) -> None:
    # The control (plain httptools) shows what the protocol mends: the head leaves at once.
    GATE.clear()
    with _server(http) as port, _connect(port) as sock:
        sock.sendall(b"GET /gated HTTP/1.1\r\nhost: x\r\n\r\n")
        early = _received_within(sock, 0.3)
        GATE.set()
        if http == "httptools":
            assert early.startswith(b"HTTP/1.1 200 OK\r\n")
            assert early.endswith(b"\r\n\r\n")  # the head alone
            return
        assert early == b"(nothing)"
        whole = _response(sock)
        assert whole.startswith(b"HTTP/1.1 200 OK\r\n")
        assert whole.endswith(b"\r\n\r\nhello")


def test_a_head_request_is_answered_and_the_connection_kept(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"HEAD /plain HTTP/1.1\r\nhost: x\r\n\r\n")
        head = _received_within(sock, 5.0)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert head.endswith(b"\r\n\r\n")
        assert b"content-length: 5" in head
        sock.sendall(b"GET /plain HTTP/1.1\r\nhost: x\r\n\r\n")
        assert _response(sock).endswith(b"\r\n\r\nhello")


def test_an_app_that_fails_midway_sends_no_half_answer(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"GET /fail HTTP/1.1\r\nhost: x\r\n\r\n")
        assert _received_within(sock, 5.0) == b""  # closed before any byte of an answer


def test_continue_leaves_before_the_body_is_sent(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n"
        )
        assert _received_within(sock, 5.0) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"ping")
        assert _response(sock).endswith(b"\r\n\r\necho:ping")


def test_responses_on_one_connection_follow_one_another(port: int) -> None:
    with _connect(port) as sock:
        for n in range(20):
            body = b"%d" % n
            head = b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % len(body)
            sock.sendall(head + body)
            assert _response(sock).endswith(b"\r\n\r\necho:" + body)
