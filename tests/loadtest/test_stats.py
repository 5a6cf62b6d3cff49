"""Percentiles, counts, the timeline and the cross-process merge of a Recorder."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

import loadtest.stats
from loadtest.stats import (
    HIGHEST_US,
    LOWEST_US,
    Recorder,
    clamp_all_us,
    clamp_us,
    new_histogram,
    record_all,
    summarize,
)


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


@pytest.mark.parametrize("digits", [2, 3])
def test_record_all_fills_a_histogram_as_record_value_does_value_by_value(digits: int) -> None:
    rng = np.random.default_rng(7)
    seconds = np.concatenate(
        [
            rng.lognormal(-6.0, 2.5, 20_000),  # microseconds to minutes
            [0.0, 1e-7, 1.9e-6, 2**20 / 1e6, (2**20 - 1) / 1e6, 59.9999, 60.0, 1e9],
        ]
    )
    one_by_one, at_once = new_histogram(digits), new_histogram(digits)
    for value in seconds.tolist():
        one_by_one.record_value(clamp_us(value))
    values = clamp_all_us(seconds)
    assert values.tolist() == [clamp_us(value) for value in seconds.tolist()]
    assert values.min() == LOWEST_US
    assert values.max() == HIGHEST_US
    record_all(at_once, values[:7])  # in two steps, as a long run folds
    record_all(at_once, values[7:])
    record_all(at_once, values[:0])  # nothing: a no-op
    assert at_once.encode() == one_by_one.encode()
    assert at_once.get_total_count() == one_by_one.get_total_count() == seconds.size
    assert at_once.get_min_value() == one_by_one.get_min_value()
    assert at_once.get_max_value() == one_by_one.get_max_value()
    assert at_once.get_value_at_percentile(99.0) == one_by_one.get_value_at_percentile(99.0)


def _reference_wire(responses: list[tuple[float, float, int, bool]]) -> dict[str, bytes]:
    """The histograms of ``responses`` filled with ``record_value``, one value at a time, as the
    recorder once filled them: the truth its folds are checked against."""
    names = ("latency", "service", "first", "settled")
    hists = {name: new_histogram() for name in names}
    per_second: dict[int, tuple[HdrHistogram, HdrHistogram]] = {}
    for latency_s, service_s, second, first in responses:
        us = clamp_us(latency_s)
        hists["latency"].record_value(us)
        hists["service"].record_value(clamp_us(service_s))
        hist, settled = per_second.setdefault(second, (new_histogram(2), new_histogram(2)))
        hist.record_value(us)
        if first:
            hists["first"].record_value(clamp_us(service_s))
        else:
            hists["settled"].record_value(us)
            settled.record_value(us)
    wire = {name: hist.encode() for name, hist in hists.items()}
    for second, (hist, settled) in per_second.items():
        wire[f"second {second}"] = hist.encode()
        wire[f"settled {second}"] = settled.encode()
    return wire


@pytest.mark.parametrize("fold_every", [3, 1000, 2_000_000])
def test_held_responses_reach_every_histogram_as_if_recorded_one_by_one(
    fold_every: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loadtest.stats, "FOLD_EVERY", fold_every)
    rng = random.Random(3)
    # Seconds out of order, as the answers to late requests arrive; a tenth are first requests.
    responses = [
        (
            rng.expovariate(200.0),
            rng.expovariate(300.0),
            rng.choice([4, 0, 2, 9]),
            rng.random() < 0.1,
        )
        for _ in range(5000)
    ]
    rec = Recorder()
    for latency_s, service_s, second, first in responses:
        rec.response(latency_s, service_s, 200, "valid", True, second, first=first)
    wire = rec.to_wire()
    expected = _reference_wire(responses)
    for name in ("latency", "service", "first", "settled"):
        assert HdrHistogram.decode(wire[name]).encode() == expected[name], name
    assert sorted(wire["seconds"]) == [0, 2, 4, 9]
    for second, (completed, _, _, hist, settled) in wire["seconds"].items():
        assert completed == sum(1 for r in responses if r[2] == second)
        assert HdrHistogram.decode(hist).encode() == expected[f"second {second}"]
        assert HdrHistogram.decode(settled).encode() == expected[f"settled {second}"]
    assert rec.completed == 5000
    # Reading folded everything: more responses after a read are counted too.
    rec.response(0.5, 0.5, 200, "valid", True, 0)
    assert rec.completed == 5001
    assert summarize(rec.latency)["max"] == pytest.approx(500.0, rel=1e-3)
