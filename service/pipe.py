"""The messages between the scorer and its sidecar process, and their one encoding.

The scorer (:mod:`service.sidecar`) and the sidecar (:mod:`service.sidecar_loop`) talk over
two one-way pipes.  Every message is one of the types below, sent with :func:`send` and read
with :func:`receive`; nothing else is written to either pipe, so both ends decode in one place
and a message of a kind this module does not know is a :class:`PipeError` naming it.

Scorer to sidecar:

* :class:`Batch`: scored transactions to shadow, record and produce;
* :class:`ShadowSet`: the shadow set from now on (sent when it changes, before the next
  batch), each version's ONNX bytes only the first time this sidecar gets it;
* :class:`Stop`: finish, flush, report, exit.

Sidecar to scorer: :class:`Report`, a snapshot of the sidecar's counts.

Encoding: pickle protocol 5 (the sidecar is our own child process, started from the same
code).  A message is one frame, its pickle, preceded by the number of out-of-band frames that
follow it: ONNX bytes are never copied into a pickle but sent as frames of their own
(:class:`pickle.PickleBuffer`), because copying megabytes inside a pickle holds the GIL the
scorer's event loop needs, while writing a buffer to the pipe releases it.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from registry.manifest import Manifest
from service.errors import ServiceError
from service.shadow import Scored
from service.tally import Tally

_COUNT = struct.Struct("!I")  # out-of-band frames after the message's own frame


class PipeError(ServiceError):
    """A frame on a sidecar pipe is not a message of this protocol."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"sidecar pipe: {problem}")


@dataclass(frozen=True)
class ShadowSpec:
    """A shadow as the scorer hands it over: its manifest, its ONNX bytes (verified against
    the registry's checksum by the scorer; empty when this sidecar was sent them before) and
    its sampling rate."""

    manifest: Manifest
    artifact: bytes
    rate: float

    @property
    def version(self) -> str:
        return self.manifest.version

    def __reduce_ex__(self, protocol: Any) -> Any:
        # The bytes go out of band (see the module docstring): a frame of their own.
        artifact = pickle.PickleBuffer(self.artifact) if self.artifact else b""
        return (_spec, (self.manifest, artifact, self.rate))


def _spec(manifest: Manifest, artifact: bytes | pickle.PickleBuffer, rate: float) -> ShadowSpec:
    return ShadowSpec(manifest, artifact if isinstance(artifact, bytes) else bytes(artifact), rate)


@dataclass(frozen=True)
class Batch:
    """Scored transactions, in the order production answered them."""

    items: list[Scored]

    def __reduce_ex__(self, protocol: Any) -> Any:
        # As plain tuples: pickle writes and reads a tuple in C, a NamedTuple with a Python
        # call each way (with the rebuild below: 1.1 + 2.1 us a transaction against 1.9 + 2.5).
        return (_batch, ([tuple(item) for item in self.items],))


def _batch(rows: list[tuple[Any, ...]]) -> Batch:
    make = Scored._make
    return Batch([make(row) for row in rows])


@dataclass(frozen=True)
class ShadowSet:
    """The shadow set from now on, in order (the order of each record's ``shadows``)."""

    specs: tuple[ShadowSpec, ...]


@dataclass(frozen=True)
class Stop:
    """Finish what was sent, flush the producer, report once more and exit."""


@dataclass(frozen=True)
class Report:
    """The sidecar's cumulative counts (:class:`service.tally.Tally`) at one moment."""

    tally: Tally


Message = Batch | ShadowSet | Stop | Report
Frames = list[bytes | pickle.PickleBuffer]  # one message, as encode() gives it
_KINDS = (Batch, ShadowSet, Stop, Report)


def encode(message: Message) -> Frames:
    """The frames of ``message``: its pickle (after the count of the frames that follow),
    then each out-of-band buffer.  Raises :class:`PipeError` for anything but a message."""
    if not isinstance(message, _KINDS):
        raise PipeError(f"cannot send a {type(message).__name__}: not a message")
    buffers: list[pickle.PickleBuffer] = []
    body = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    return [_COUNT.pack(len(buffers)) + body, *buffers]


def decode(frames: Sequence[bytes]) -> Message:
    """The message ``frames`` (as :func:`encode` made them) carry.  Raises :class:`PipeError`
    when they are not one: a short or unreadable frame, a wrong number of frames, or an object
    of another kind."""
    if not frames or len(frames[0]) < _COUNT.size:
        raise PipeError("a frame too short to be a message")
    head = frames[0]
    (count,) = _COUNT.unpack_from(head)
    if count != len(frames) - 1:
        raise PipeError(f"the message announces {count} buffers, {len(frames) - 1} came")
    try:
        message = pickle.loads(memoryview(head)[_COUNT.size :], buffers=frames[1:])  # noqa: S301 - our own process's bytes
    except Exception as exc:  # UnpicklingError, or whatever a class's reconstruction raises
        raise PipeError(f"an unreadable message ({type(exc).__name__}: {exc})") from exc
    if not isinstance(message, _KINDS):
        raise PipeError(f"unknown message kind {type(message).__name__}")
    return message


def send(conn: Connection, message: Message) -> None:
    """Write ``message`` to ``conn``; blocks while the pipe is full.  Raises ``OSError`` or
    ``ValueError`` when the other end or this one is closed."""
    send_frames(conn, encode(message))


def send_frames(conn: Connection, frames: Frames) -> None:
    """Write a message :func:`encode` made earlier (the scorer packs batches on its request
    path and writes them later, see :mod:`service.sidecar`); as :func:`send`."""
    for frame in frames:
        conn.send_bytes(frame)


def receive(conn: Connection) -> Message:
    """Read one message from ``conn`` (blocking).  Raises ``EOFError``/``OSError`` when the
    other end is gone, :class:`PipeError` when what came is not a message."""
    head = conn.recv_bytes()
    if len(head) < _COUNT.size:
        raise PipeError("a frame too short to be a message")
    (count,) = _COUNT.unpack_from(head)
    return decode([head, *(conn.recv_bytes() for _ in range(count))])
