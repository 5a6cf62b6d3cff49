"""The scorer's HTTP protocol: uvicorn's httptools protocol, each response's head sent with
its body in one write.

uvicorn writes a response's status line and headers when the app sends
``http.response.start``, and its body when the app sends ``http.response.body``: two writes,
two TCP segments.  A scorer killed between them (SIGKILL, the OOM killer) left its client, or
HAProxy in front of it, holding headers without a body: a truncated answer that the load
balancer cannot retry, since the replica had begun to answer (``tests/deploy/test_replicas.py``
caught it in CI).  Here a response's head waits for the first write of its body and leaves
with it, so an answer of up to a socket buffer leaves whole or not at all.  The write saved
per request did not show in a pinned A/B: 0.96-1.02 of the rate before (docs/loadtest.md).

What changes beside that:

* A streaming response's headers leave with its first body chunk, not before it.
* A response whose app fails after ``http.response.start`` and before any body (uvicorn then
  closes the connection) sends nothing at all, not a head without its body: the client sees a
  connection closed before any answer, which HAProxy retries on another replica.
* ``100 Continue`` (sent before the response starts) still leaves at once.

Everything else is uvicorn's (``http="httptools"``), which this subclasses.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class _OneWrite:
    """A connection's transport as its responses see it: a response's head (uvicorn's first
    write after the response started) is held until the next write, which carries it.
    Everything else is the transport's own.

    One per connection: uvicorn runs one response of a connection at a time (a pipelined
    request starts when the one before it has been answered), and :meth:`start` says which.
    """

    __slots__ = ("_cycle", "_head", "_pending", "_transport")

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._cycle: RequestResponseCycle | None = None
        self._pending = False  # the running response's head is still to come
        self._head: bytes | None = None

    def start(self, cycle: RequestResponseCycle) -> None:
        """``cycle`` is the response that runs from now on."""
        self._cycle = cycle
        self._pending = True

    def write(self, data: bytes) -> None:
        if self._pending and self._cycle is not None and self._cycle.response_started:
            self._pending = False
            self._head = data
            return
        head = self._head
        if head is not None:
            self._head = None
            data = head + data
        self._transport.write(data)

    def flush(self) -> None:
        """Send a held head (a response that ended without a body write: ``HEAD``)."""
        if self._head is not None:
            self.write(b"")

    def close(self) -> None:
        # uvicorn closes after a complete response (not kept alive), or when the app failed
        # midway: then a held head is dropped, so that no half answer leaves.
        if self._cycle is not None and self._cycle.response_complete:
            self.flush()
        self._head = None
        self._transport.close()

    def is_closing(self) -> bool:  # asked after every response: not through __getattr__
        return bool(self._transport.is_closing())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol whose responses leave in one write (module docstring).
    Given to uvicorn as its ``http`` protocol class."""

    _out: _OneWrite

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # its flow control keeps the transport itself
        # Requests' cycles are made with this transport, so they write through the wrapper
        # (typed a Transport by uvicorn: it has what the cycles use of one).
        self._out = _OneWrite(transport)
        self.transport = self._out  # type: ignore[assignment]

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        self._out.start(cycle)
        super()._start_asgi_task(cycle, app)

    def on_response_complete(self) -> None:
        self._out.flush()
        super().on_response_complete()
