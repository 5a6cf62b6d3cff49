"""A minimal HTTP/1.1 client: keep-alive connections speaking pre-encoded requests.

A generic client (httpx, aiohttp) spends tens of microseconds per request building and parsing
messages, which on a 2-core box shared with the server makes the generator the bottleneck.  This
one writes request bytes prepared before the run and reads only what it must: the status code
and the body length (``Content-Length``), so it knows where the next response starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from loadtest.errors import LoadTestError

MAX_HEAD_BYTES = 64 * 1024


class ProtocolError(LoadTestError):
    """The server sent something this client does not parse (the message says what)."""


def parse_head(head: bytes) -> tuple[int, int, bool]:
    """``(status, content_length, close)`` of a response head (status line + headers, without
    the blank line).  Raises :class:`ProtocolError` for a malformed status line or a body
    whose length is not given by ``Content-Length`` (chunked responses are not supported)."""
    if not head.startswith(b"HTTP/1.") or len(head) < 12 or head[12:13] not in (b" ", b"\r", b""):
        raise ProtocolError(f"bad status line {head[:40]!r}")
    try:
        status = int(head[9:12])
    except ValueError:
        raise ProtocolError(f"bad status line {head[:40]!r}") from None
    lower = head.lower()
    start = lower.find(b"\r\ncontent-length:")
    if start >= 0:
        start += 17
        end = lower.find(b"\r\n", start)
        try:
            length = int(lower[start : end if end >= 0 else None])
        except ValueError:
            raise ProtocolError("bad Content-Length header") from None
    elif status in (204, 304) or 100 <= status < 200:
        length = 0
    else:
        raise ProtocolError(f"status {status} response without Content-Length")
    close = b"\r\nconnection: close" in lower or head.startswith(b"HTTP/1.0")
    return status, length, close


class ResponseParser:
    """Splits a byte stream into responses; :meth:`feed` returns the completed ones."""

    def __init__(self) -> None:
        self._buf = b""
        self._status = 0  # 0: waiting for a head
        self._remaining = 0
        self._close = False

    def feed(self, data: bytes) -> list[tuple[int, bool]]:
        """Add received bytes; return ``(status, close)`` for each response completed."""
        buf = self._buf + data if self._buf else data
        done: list[tuple[int, bool]] = []
        while True:
            if not self._status:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise ProtocolError(f"response head longer than {MAX_HEAD_BYTES} bytes")
                    break
                self._status, self._remaining, self._close = parse_head(buf[:end])
                buf = buf[end + 4 :]
            if len(buf) < self._remaining:
                self._remaining -= len(buf)
                buf = b""
                break
            buf = buf[self._remaining :]
            done.append((self._status, self._close))
            self._status = 0
            if not buf:
                break
        self._buf = buf
        return done


class Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight.

    The owner (a runner) sets the request fields before :meth:`send` and is called back with
    ``on_response(conn, status, close)`` and ``on_lost(conn, reason)``.
    """

    def __init__(
        self,
        on_response: Callable[[Connection, int, bool], None],
        on_lost: Callable[[Connection, str], None],
    ) -> None:
        self._on_response = on_response
        self._on_lost = on_lost
        self._parser = ResponseParser()
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.scheduled = 0.0  # loop time the request was due (open loop) or sent (closed loop)
        self.sent = 0.0
        self.idle_since = 0.0
        self.payload = 0
        # Opened after the run started (a pool that grew under load): its first answer is
        # recorded apart, as it includes the server accepting the connection.
        self.fresh = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            responses = self._parser.feed(data)
        except ProtocolError as exc:
            self.abort(f"protocol: {exc}")
            return
        for status, close in responses:
            self._on_response(self, status, close)

    def abort(self, reason: str) -> None:
        """Drop the connection now; the owner hears ``on_lost(reason)`` once."""
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.abort()
            self._on_lost(self, reason)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.transport = None
            self._on_lost(self, "closed by server" if exc is None else f"lost: {exc}")
