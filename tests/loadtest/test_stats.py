"""Percentiles, counts, the timeline and the cross-process merge of a Recorder."""

from __future__ import annotations

import pickle

import pytest

from loadtest.stats import Recorder, clamp_us, summarize


def _filled(latencies_ms: list[float], second: int = 0, status: int = 200) -> Recorder:
    rec = Recorder()
    for ms in latencies_ms:
        rec.response(ms / 1000, ms / 2000, status, "valid", status < 300, second)
    return rec


def test_percentiles_of_known_values_are_exact_within_hdr_precision() -> None:
    rec = _filled([float(v) for v in range(1, 1001)])  # 1..1000 ms
    got = summarize(rec.latency)
    assert got["p50"] == pytest.approx(500, rel=1e-3)
    assert got["p90"] == pytest.approx(900, rel=1e-3)
    assert got["p99"] == pytest.approx(990, rel=1e-3)
    assert got["p99.9"] == pytest.approx(999, rel=1e-3)
    assert got["max"] == pytest.approx(1000, rel=1e-3)
    assert got["mean"] == pytest.approx(500.5, rel=1e-3)
    assert summarize(rec.service)["p50"] == pytest.approx(250, rel=1e-3)


def test_an_empty_histogram_summarizes_to_zeros() -> None:
    assert summarize(Recorder().latency) == {
        "p50": 0.0,
        "p90": 0.0,
        "p99": 0.0,
        "p99.9": 0.0,
        "max": 0.0,
        "mean": 0.0,
    }


def test_values_are_clamped_into_the_histogram_range() -> None:
    assert clamp_us(0.0) == 1
    assert clamp_us(0.0025) == 2500
    assert clamp_us(3600.0) == 60_000_000


def test_merged_percentiles_are_those_of_all_requests_not_an_average() -> None:
    fast = _filled([1.0] * 900, second=0)
    slow = _filled([100.0] * 100, second=1, status=503)
    fast.cpu_s, slow.cpu_s = 0.5, 0.25
    # Crosses a process boundary the way parallel.run does: pickled wire form.
    wire = pickle.loads(pickle.dumps(fast.to_wire()))  # noqa: S301 - our own bytes
    merged = Recorder.from_wire(wire)
    merged.merge(slow)
    assert merged.completed == 1000
    assert summarize(merged.latency)["p50"] == pytest.approx(1.0, rel=1e-3)
    assert summarize(merged.latency)["p99"] == pytest.approx(100.0, rel=1e-3)
    assert dict(merged.by_status) == {"200": 900, "503": 100}
    assert merged.unexpected == 100
    assert merged.failed == 100
    assert merged.cpu_s == 0.75


def test_errors_count_as_failed_and_show_in_their_second() -> None:
    rec = _filled([2.0, 4.0], second=0)
    rec.error("timeout", 2)
    rec.error("timeout", 2)
    rec.error("connect: ConnectionRefusedError", 2)
    assert rec.failed == 3
    assert dict(rec.errors) == {"timeout": 2, "connect: ConnectionRefusedError": 1}
    timeline = rec.timeline()
    assert [(t["second"], t["completed"], t["failed"]) for t in timeline] == [
        (0, 2, 0),
        (1, 0, 0),  # a second with nothing is still on the timeline
        (2, 0, 3),
    ]
    assert timeline[0]["max_ms"] == pytest.approx(4.0, rel=1e-2)


def test_send_lag_is_recorded_separately_from_latency() -> None:
    rec = Recorder()
    rec.send_lag(0.003)
    assert summarize(rec.lag)["max"] == pytest.approx(3.0, rel=1e-3)
    assert rec.completed == 0
