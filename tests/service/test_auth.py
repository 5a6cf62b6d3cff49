"""The admin guard: no token, no body read.

Reproduces the defect where ``/admin`` routes read and parsed the whole body before the token
was checked (four 100 MB POSTs without a token took the scorer from 225 MB to 1.25 GB, and a
malformed body without a token got 422 instead of 401).
"""

from __future__ import annotations

import gc
import socket
import threading
from collections.abc import Callable, Iterator

import orjson
import psutil
import pytest
from httpx import Client
from pydantic import SecretStr
from starlette.types import Message, Receive, Scope, Send

from registry import ModelRegistry
from service.app import create_app
from service.auth import AdminGuard, bearer_token
from service.settings import ServiceSettings
from tests.service.helpers import ADMIN, ADMIN_TOKEN, register
from tests.service.server import serving

HUNDRED_MB = 100 * 1024 * 1024


class Downstream:
    """The app behind the guard: records what reached it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        self.bodies.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


class Wire:
    """A client's body, as ASGI ``receive`` messages, counting how many were taken."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks, self.taken = chunks, 0

    async def __call__(self) -> Message:
        self.taken += 1
        chunk = self.chunks[self.taken - 1]
        return {"type": "http.request", "body": chunk, "more_body": self.taken < len(self.chunks)}


def call(
    guard: AdminGuard, wire: Wire, headers: list[tuple[bytes, bytes]], path: str = "/admin/x"
) -> int:
    import asyncio

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    asyncio.run(guard(scope, wire, send))
    return int(sent[0]["status"])


@pytest.fixture
def guarded() -> tuple[AdminGuard, Downstream]:
    downstream = Downstream()
    return AdminGuard(downstream, token=SecretStr(ADMIN_TOKEN), max_body_bytes=1024), downstream


def test_without_the_token_the_body_is_never_received(
    guarded: tuple[AdminGuard, Downstream],
) -> None:
    guard, downstream = guarded
    big = [b"x" * 65536] * 1600  # 100 MB, offered in 64 KiB messages
    for headers, status in (
        ([(b"content-length", b"%d" % HUNDRED_MB)], 401),
        ([(b"authorization", b"Basic dXNlcjpwYXNz")], 401),
        ([(b"authorization", b"Bearer not-the-token")], 403),
    ):
        wire = Wire(big)
        assert call(guard, wire, headers) == status
        assert wire.taken == 0  # receive() was never called: not one byte was read
    assert downstream.bodies == []


def test_with_the_token_the_body_is_bounded_then_handed_on(
    guarded: tuple[AdminGuard, Downstream],
) -> None:
    guard, downstream = guarded
    auth = (b"authorization", b"bearer " + ADMIN_TOKEN.encode())  # the scheme is any case
    declared = Wire([b"x" * 2000])
    assert call(guard, declared, [auth, (b"content-length", b"2000")]) == 413
    assert declared.taken == 0
    streamed = Wire([b"x" * 600, b"x" * 600, b"x" * 600])
    assert call(guard, streamed, [auth]) == 413
    assert streamed.taken == 2  # stopped as soon as the limit was passed
    fine = Wire([b'{"actor":', b' "ana"}'])
    assert call(guard, fine, [auth]) == 200
    assert downstream.bodies == [b'{"actor": "ana"}']
    other = Wire([b"x" * 2000])
    assert call(guard, other, [], path="/administrator") == 200  # not an admin path


def test_bearer_token_parsing() -> None:
    assert bearer_token(None) is None
    assert bearer_token(b"Bearer") is None
    assert bearer_token(b"Bearer   ") is None
    assert bearer_token(b"Token abc") is None
    assert bearer_token(b"BEARER abc ") == "abc"


# ----------------------------------------------------------------- a real server


@pytest.fixture
def server(
    registry: ModelRegistry, make_settings: Callable[..., ServiceSettings]
) -> Iterator[Client]:
    register(registry, "v1")
    with serving(create_app(make_settings(), registry)) as client:
        yield client


def raw_post(client: Client, path: str, declared: int, first: int) -> tuple[bytes, int]:
    """POST ``path`` declaring a ``declared``-byte body; send its first ``first`` bytes, read
    the answer (10 s at most), then try to send the rest.  Returns the answer's first line
    and how many body bytes the server let through in all.

    The answer is read before the rest is sent: a server that reads the body before it
    answers (as the admin routes did) does not answer in time, and the test fails on it.
    """
    host, port = client.base_url.host, client.base_url.port
    assert port is not None
    chunk = b"0" * 65536
    sent = 0
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n".encode()
        )
        sock.sendall(chunk[:first])
        sent = first
        try:
            answer = sock.recv(4096)
        except TimeoutError:
            answer = b"(no answer within 10 s)"
        try:
            while sent < declared:
                sent += sock.send(chunk[: min(len(chunk), declared - sent)])
        except OSError:  # the server closed the connection: the rest is refused
            pass
    return answer.split(b"\r\n", 1)[0], sent


def test_a_100mb_unauthenticated_post_is_answered_before_it_is_sent(server: Client) -> None:
    first_line, sent = raw_post(server, "/admin/models/v1/approve", HUNDRED_MB, 65536)
    assert first_line == b"HTTP/1.1 401 Unauthorized"  # with 64 KiB of 100 MB on the wire
    assert sent < HUNDRED_MB // 10  # and the connection closed: the rest never went


def test_four_100mb_unauthenticated_posts_do_not_grow_memory(server: Client) -> None:
    """The server runs in this process: its resident memory must not take in the bodies."""
    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    answers: list[tuple[bytes, int]] = []

    def one() -> None:
        answers.append(raw_post(server, "/admin/rollback", HUNDRED_MB, 1 << 20))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    gc.collect()
    grown = process.memory_info().rss - before
    assert [line for line, _ in answers] == [b"HTTP/1.1 401 Unauthorized"] * 4
    assert grown < 32 << 20, f"resident memory grew by {grown:,} bytes for 400 MB offered"


@pytest.mark.parametrize(
    "body", [b"{not json", b'{"actor": 7}', b"", orjson.dumps({"actor": "x" * 100_000})]
)
def test_every_admin_route_answers_401_whatever_the_body(server: Client, body: bytes) -> None:
    routes = [
        (method, route.path.replace("{version}", "v1"))
        for route in server_routes(server)
        for method in route.methods
    ]
    assert len(routes) >= 7
    json = {"Content-Type": "application/json"}
    for method, path in routes:
        response = server.request(method, path, content=body, headers=json)
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["detail"] == (
            "the admin API needs 'Authorization: Bearer <SHADOWLINE_ADMIN_TOKEN>'"
        )
        assert response.headers["connection"] == "close"
        wrong = {**json, "Authorization": "Bearer not-the-token"}
        assert server.request(method, path, content=body, headers=wrong).status_code == 403


def server_routes(client: Client) -> list[Route]:
    schema = client.get("/openapi.json").json()
    return [
        Route(path, {method.upper() for method in item})
        for path, item in schema["paths"].items()
        if path.startswith("/admin")
    ]


class Route:
    def __init__(self, path: str, methods: set[str]) -> None:
        self.path, self.methods = path, methods


def test_with_the_token_admin_bodies_have_their_own_limit(server: Client) -> None:
    big = orjson.dumps({"actor": "ana", "reason": "x" * 70_000})
    refused = server.post("/admin/models/v1/unshadow", content=big, headers=ADMIN)
    assert refused.status_code == 413
    assert refused.json()["detail"] == (
        f"a request body of {len(big)} bytes exceeds the limit of 65536 bytes"
    )
    malformed = server.post("/admin/models/v1/unshadow", content=b"{not json", headers=ADMIN)
    assert malformed.status_code == 422
