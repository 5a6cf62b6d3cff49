"""Targets: http only, loopback unless explicitly allowed."""

from __future__ import annotations

import pytest

from loadtest.errors import LoadTestError
from loadtest.target import Target, is_loopback, parse_target


def test_loopback_targets_parse() -> None:
    assert parse_target("http://127.0.0.1:8000") == Target("127.0.0.1", 8000)
    assert parse_target("http://localhost:81/ignored/path").authority == "localhost:81"
    assert parse_target("http://[::1]:9000") == Target("::1", 9000)
    assert parse_target("http://127.0.0.1") == Target("127.0.0.1", 80)


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.2")
    assert is_loopback("LOCALHOST")
    assert not is_loopback("10.0.0.1")
    assert not is_loopback("example.org")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "https://127.0.0.1:1",
            "target 'https://127.0.0.1:1': only http:// is supported (got 'https')",
        ),
        ("http://:80", "target 'http://:80': no host"),
        (
            "http://127.0.0.1:99999",
            "target 'http://127.0.0.1:99999': bad port (Port out of range 0-65535)",
        ),
        (
            "http://10.1.2.3:80",
            "target 'http://10.1.2.3:80': 10.1.2.3 is not a loopback address; "
            "pass --allow-remote to load it",
        ),
    ],
)
def test_bad_targets_are_refused_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(LoadTestError) as info:
        parse_target(url)
    assert str(info.value) == message


def test_remote_targets_need_the_explicit_flag() -> None:
    assert parse_target("http://10.1.2.3:80", allow_remote=True) == Target("10.1.2.3", 80)
