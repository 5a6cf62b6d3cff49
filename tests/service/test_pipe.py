"""The sidecar pipe's protocol: every message kind survives the trip, ONNX bytes travel out of
the pickle, and anything else is refused with a message naming it."""

from __future__ import annotations

import multiprocessing
import pickle
import struct

import pytest

from service.pipe import (
    Batch,
    Message,
    PipeError,
    Report,
    ShadowSet,
    ShadowSpec,
    Stop,
    decode,
    encode,
    receive,
    send,
)
from service.shadow import Scored
from service.tally import Tally
from tests.service.helpers import build, scored


def frames_of(message: Message) -> list[bytes]:
    return [bytes(frame) for frame in encode(message)]


def test_each_message_kind_round_trips() -> None:
    prod = build("v1")
    tally = Tally(sent=3, records=4)
    tally.shadow_error("v2", "shed", 2)
    spec = ShadowSpec(prod.manifest, prod.artifact, 0.25)
    messages: list[Message] = [Batch(scored(prod)), ShadowSet((spec,)), Stop(), Report(tally)]
    for message in messages:
        assert decode(frames_of(message)) == message


def test_a_batch_travels_as_plain_tuples_and_arrives_as_scored_transactions() -> None:
    prod = build("v1")
    items = scored(prod)
    head, *buffers = frames_of(Batch(items))
    assert b"Scored" not in head  # no class reference per item: tuples, read and written in C
    got = decode([head, *buffers])
    assert isinstance(got, Batch)
    assert got.items == items
    assert all(type(item) is Scored for item in got.items)
    assert got.items[0].transaction_id == items[0].transaction_id


def test_onnx_bytes_are_frames_of_their_own() -> None:
    v1, v2 = build("v1"), build("v2")
    specs = (ShadowSpec(v1.manifest, v1.artifact, 1.0), ShadowSpec(v2.manifest, b"", 0.5))
    head, *buffers = frames_of(ShadowSet(specs))
    assert buffers == [v1.artifact]  # v2's were sent before: nothing to send
    assert v1.artifact not in head
    got = decode([head, *buffers])
    assert isinstance(got, ShadowSet)
    assert [s.artifact for s in got.specs] == [v1.artifact, b""]
    assert [s.version for s in got.specs] == ["v1", "v2"]


def test_messages_cross_a_real_pipe_in_order() -> None:
    prod = build("v1")
    recv_end, send_end = multiprocessing.Pipe(duplex=False)
    spec = ShadowSpec(prod.manifest, prod.artifact, 1.0)
    sent: list[Message] = [ShadowSet((spec,)), Batch(scored(prod, 2)), Stop()]
    try:
        for message in sent:
            send(send_end, message)
        assert [receive(recv_end) for _ in sent] == sent
    finally:
        recv_end.close()
        send_end.close()


def test_only_messages_can_be_sent() -> None:
    with pytest.raises(PipeError, match=r"^sidecar pipe: cannot send a tuple: not a message$"):
        encode(("batch", []))  # type: ignore[arg-type]


def test_an_unknown_kind_is_refused_by_name() -> None:
    frame = struct.pack("!I", 0) + pickle.dumps(("batch", []), protocol=5)
    with pytest.raises(PipeError, match=r"^sidecar pipe: unknown message kind tuple$"):
        decode([frame])


def test_malformed_frames_are_refused() -> None:
    head, artifact = frames_of(ShadowSet((ShadowSpec(build("v1").manifest, b"onnx", 1.0),)))
    with pytest.raises(PipeError, match=r"^sidecar pipe: a frame too short to be a message$"):
        decode([b"\x00"])
    with pytest.raises(PipeError, match=r"^sidecar pipe: the message announces 1 buffers, 0 came$"):
        decode([head])
    with pytest.raises(PipeError, match=r"^sidecar pipe: an unreadable message \(UnpicklingError"):
        decode([struct.pack("!I", 0) + b"not a pickle"])
    assert decode([head, artifact]) == decode([head, artifact])  # the pair itself is fine
