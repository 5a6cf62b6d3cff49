"""The minimal HTTP/1.1 response parser (no network)."""

from __future__ import annotations

import pytest

from loadtest.protocol import ProtocolError, ResponseParser, parse_head

OK = b'HTTP/1.1 200 OK\r\ncontent-length: 11\r\ncontent-type: application/json\r\n\r\n{"ok":true}'


def test_parse_head_reads_status_length_and_close() -> None:
    assert parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5") == (200, 5, False)
    assert parse_head(b"HTTP/1.1 422 Unprocessable\r\nCONTENT-LENGTH: 0\r\nConnection: close") == (
        422,
        0,
        True,
    )
    assert parse_head(b"HTTP/1.1 204 No Content") == (204, 0, False)
    assert parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 1") == (200, 1, True)


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"SPDY/3 200 OK", "bad status line b'SPDY/3 200 OK'"),
        (b"HTTP/1.1 2x0 OK", "bad status line b'HTTP/1.1 2x0 OK'"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: many", "bad Content-Length header"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked",
            "status 200 response without Content-Length",
        ),
    ],
)
def test_parse_head_refuses_what_it_cannot_frame(head: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_head(head)
    assert str(info.value) == message


def test_a_response_split_at_every_byte_completes_once() -> None:
    parser = ResponseParser()
    done = []
    for i in range(len(OK)):
        done += parser.feed(OK[i : i + 1])
    assert done == [(200, False)]


def test_several_responses_in_one_read_all_complete() -> None:
    second = b"HTTP/1.1 503 Busy\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye"
    parser = ResponseParser()
    assert parser.feed(OK + second + OK[:20]) == [(200, False), (503, True)]
    assert parser.feed(OK[20:]) == [(200, False)]


def test_an_endless_head_is_a_protocol_error() -> None:
    parser = ResponseParser()
    with pytest.raises(ProtocolError) as info:
        parser.feed(b"HTTP/1.1 200 OK\r\n" + b"x" * 70_000)
    assert str(info.value) == "response head longer than 65536 bytes"
