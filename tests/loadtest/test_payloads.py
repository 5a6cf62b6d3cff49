"""Payload files, the kind mix and pre-encoded requests."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from loadtest.errors import LoadTestError
from loadtest.payloads import (
    MIX_TABLE_SIZE,
    Payload,
    encode_payloads,
    load_payload_file,
    parse_mix,
    parse_payload_line,
    synthetic_payloads,
    write_payload_file,
)


def test_a_request_is_encoded_once_as_keep_alive_http11() -> None:
    p = Payload(kind="valid", path="/v1/score", body=b'{"a":1}')
    assert p.encode("127.0.0.1:8000") == (
        b"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
        b"Content-Type: application/json\r\nContent-Length: 7\r\n\r\n"
        b'{"a":1}'
    )


def test_payload_lines_default_method_and_expected_status() -> None:
    valid = parse_payload_line('{"kind": "valid", "path": "/x", "body": {"a": 1}}', "f:1")
    assert (valid.method, valid.expect_class, valid.body) == ("POST", 2, b'{"a":1}')
    invalid = parse_payload_line('{"kind": "invalid", "path": "/x", "body": {}}', "f:2")
    assert invalid.expect_class == 4
    explicit = parse_payload_line(
        '{"kind": "valid", "path": "/x", "body": [], "expect": "5xx"}', "f:3"
    )
    assert explicit.expect_class == 5


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "{not json",
            "p.jsonl:3: not valid JSON (Expecting property name enclosed in double quotes)",
        ),
        ("[1]", "p.jsonl:3: a payload must be a JSON object"),
        ('{"path": "/x", "body": 1}', "p.jsonl:3: 'kind' must be a non-empty string"),
        (
            '{"kind": "v", "path": "x", "body": 1}',
            "p.jsonl:3: 'path' must be a string starting with '/'",
        ),
        ('{"kind": "v", "path": "/x"}', "p.jsonl:3: 'body' is missing"),
        (
            '{"kind": "v", "path": "/x", "body": 1, "method": "DELETE"}',
            "p.jsonl:3: method must be POST, PUT or GET (got 'DELETE')",
        ),
        (
            '{"kind": "v", "path": "/x", "body": 1, "expect": "200"}',
            "p.jsonl:3: expect must be one of 2xx, 3xx, 4xx, 5xx (got '200')",
        ),
    ],
)
def test_bad_payload_lines_name_file_line_and_problem(line: str, message: str) -> None:
    with pytest.raises(LoadTestError) as info:
        parse_payload_line(line, "p.jsonl:3")
    assert str(info.value) == message


def test_payload_files_round_trip(tmp_path: Path) -> None:
    payloads = synthetic_payloads(fields=3, per_kind=2)
    path = tmp_path / "p.jsonl"
    write_payload_file(path, payloads)
    assert load_payload_file(path) == payloads


def test_missing_and_empty_payload_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(LoadTestError) as info:
        load_payload_file(tmp_path / "nope.jsonl")
    assert str(info.value) == f"payload file {tmp_path / 'nope.jsonl'}: No such file or directory"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(LoadTestError) as info:
        load_payload_file(empty)
    assert str(info.value) == f"payload file {empty}: no payloads"


def test_mix_specs_parse_to_weights() -> None:
    assert parse_mix("valid=90, invalid=5,batch=5") == {"valid": 90, "invalid": 5, "batch": 5}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("valid", "mix 'valid': expected kind=weight pairs, got 'valid'"),
        ("valid=x", "mix 'valid=x': expected kind=weight pairs, got 'valid=x'"),
        ("valid=-1", "mix 'valid=-1': expected kind=weight pairs, got 'valid=-1'"),
        ("valid=0", "mix 'valid=0': the weights must add up to more than 0"),
        ("", "mix '': the weights must add up to more than 0"),
    ],
)
def test_bad_mixes_are_refused(spec: str, message: str) -> None:
    with pytest.raises(LoadTestError) as info:
        parse_mix(spec)
    assert str(info.value) == message


def test_the_mix_weights_the_kinds_and_zero_weight_kinds_never_go_out() -> None:
    payloads = synthetic_payloads(fields=4, per_kind=5)
    enc = encode_payloads(payloads, {"valid": 8, "invalid": 2, "batch": 0}, "h:1", seed=3)
    kinds = Counter(payloads[enc.pick(i)].kind for i in range(MIX_TABLE_SIZE))
    assert set(kinds) == {"valid", "invalid"}
    assert kinds["valid"] / MIX_TABLE_SIZE == pytest.approx(0.8, abs=0.03)
    assert enc.pick(MIX_TABLE_SIZE + 7) == enc.pick(7)  # the picks cycle
    assert enc.requests[0] == payloads[0].encode("h:1")


def test_without_a_mix_every_payload_can_go_out() -> None:
    payloads = synthetic_payloads(fields=2, per_kind=1)
    enc = encode_payloads(payloads, None, "h:1")
    assert {enc.pick(i) for i in range(MIX_TABLE_SIZE)} == {0, 1, 2}


def test_a_mix_naming_a_kind_without_payloads_is_refused() -> None:
    with pytest.raises(LoadTestError) as info:
        encode_payloads(synthetic_payloads(fields=2, per_kind=1), {"huge": 1}, "h:1")
    assert str(info.value) == (
        "mix names kinds with no payload: huge (payload kinds: batch, invalid, valid)"
    )
    with pytest.raises(LoadTestError) as info:
        encode_payloads([], None, "h:1")
    assert str(info.value) == "no payloads to send"


def test_synthetic_payloads_in_the_scorer_shape_have_the_three_kinds() -> None:
    valid, invalid, batch = synthetic_payloads(fields=3, per_kind=1, batch_size=4)
    request = json.loads(valid.body)
    assert list(request) == ["transaction_id", "features"]
    assert list(request["features"]) == ["f00", "f01", "f02"]
    bad = json.loads(invalid.body)["features"]
    assert bad["f00"] == "not-a-number"
    assert "f01" not in bad
    assert invalid.expect_class == 4
    assert batch.path == "/v1/score/batch"
    rows = json.loads(batch.body)["transactions"]
    assert len(rows) == 4
    assert len({r["transaction_id"] for r in rows}) == 4  # every transaction id is unique


def test_flat_synthetic_payloads_send_the_row_itself() -> None:
    valid, _, batch = synthetic_payloads(fields=2, per_kind=1, batch_size=2, shape="flat")
    assert list(json.loads(valid.body)) == ["f00", "f01"]
    assert len(json.loads(batch.body)["rows"]) == 2


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"fields": 1}, "fields must be at least 2 (got 1)"),
        ({"shape": "xml"}, "shape must be one of scorer, flat (got 'xml')"),
    ],
)
def test_bad_generator_options_are_refused(kw: dict[str, object], message: str) -> None:
    with pytest.raises(LoadTestError) as info:
        synthetic_payloads(**kw)  # type: ignore[arg-type]
    assert str(info.value) == message
